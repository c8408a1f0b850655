// The MoE feed-forward layer: scorer -> selector -> dispatcher -> experts -> combine, plus the
// auxiliary losses (Megatron's moe_layer: route, dispatch, compute, combine, nothing else).
// Each part is chosen by config (model.moe.*) and sits behind its own small interface.
// A dense model (n_experts = 1, scorer none) runs its one SwiGLU expert on every token directly.
#pragma once

#include "config/config.h"
#include "moe/aux_loss.h"
#include "moe/dispatcher.h"
#include "moe/experts.h"
#include "moe/scorer.h"
#include "moe/selector.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace am {

// Counters summed over the micro-batches since the last reset (one optimizer step, or a log
// interval): what metrics.jsonl reports per layer.
struct MoeLayerStats {
  std::vector<int64_t> expert_assignments;  // (n) assignments per expert
  int64_t tokens = 0;
  std::map<std::string, double> aux_sum;    // aux loss values (with coefficients), summed
  int micro_batches = 0;
};

class MoeLayer {
 public:
  MoeLayer(Backend& be, const ModelConfig& cfg, int layer);
  void register_params(ParamTable& table);
  void bind(ParamStore& store);
  void allocate(int64_t n_tokens);

  // h (N,d) -> y (N,d) write. Returns the sum of the auxiliary losses (coefficients applied).
  double forward(Tensor h, Tensor y);
  // dy (N,d) -> dh (N,d) acc; parameter gradients acc. aux_scale multiplies aux-loss gradients.
  void backward(Tensor h, Tensor dy, Tensor dh, double aux_scale);

  bool dense() const { return scorer_ == nullptr; }
  int n_experts() const { return n_; }
  const MoeLayerStats& stats() const { return stats_; }
  void reset_stats();

 private:
  AuxInputs aux_inputs() const;

  Backend& be_;
  int n_, d_;
  int64_t n_tokens_ = 0;
  std::unique_ptr<Scorer> scorer_;      // null for a dense layer
  std::unique_ptr<Selector> selector_;  // null for a dense layer
  LocalDispatcher dispatcher_;
  std::unique_ptr<SwigluExperts> experts_;
  std::vector<std::unique_ptr<AuxLoss>> aux_;

  // activations (saved for the backward)
  TensorBuf scores_, probs_;  // (N,n)
  Routing routing_;
  TensorBuf xg_, eo_;         // (N*kmax, d): expert inputs and outputs, expert-major
  std::vector<int64_t> dense_offsets_;
  // backward scratch
  TensorBuf dscores_, dprobs_, dslot_gate_, deo_, dxg_;

  MoeLayerStats stats_;
};

}  // namespace am

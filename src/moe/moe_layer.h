// The MoE feed-forward layer: scorer -> selector -> dispatcher -> experts -> combine, plus the
// auxiliary losses (Megatron's moe_layer: route, dispatch, compute, combine, nothing else).
// Each part is chosen by config (model.moe.*, built in components.cpp) and sits behind its own
// small interface; any scorer goes with any selector. A dense model (n_experts = 1, scorer none)
// runs its one SwiGLU expert on every token directly.
#pragma once

#include "config/config.h"
#include "dist/dist.h"
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

// Counters summed over the micro-batches since the last reset (a log interval): what
// metrics.jsonl reports per layer (../shared/spec/selection.md §5). They accumulate in backend
// memory (MoeLayer's device statistics) and come to the host when stats() is called: once per
// logged step, one read per layer.
struct MoeLayerStats {
  std::vector<int64_t> expert_assignments;  // (n) routed assignments per true expert
  std::vector<int64_t> selected;            // (n+m) selector slots per id, before capacity drops
  int64_t tokens = 0;
  int64_t dropped = 0;                    // true-expert slots dropped by the capacity factor
  int64_t unassigned = 0;                 // tokens that reached no true expert
  double ent_conf_sum = 0;                // sum over micro-batches of mean_t H(P_t) (AoE Eq. 8)
  std::vector<double> act_norm_sum;       // (n) sum over micro-batches of mean_t s_t[i] (activation norms)
  std::map<std::string, double> aux_sum;  // aux loss values (coefficients applied), summed
  int micro_batches = 0;
};

// The parts of a layer, as chosen by the config (components.cpp).
struct MoeComponents {
  std::unique_ptr<Experts> experts;
  std::unique_ptr<Scorer> scorer;      // null for a dense layer
  std::unique_ptr<Selector> selector;  // null for a dense layer
  std::vector<std::unique_ptr<AuxLoss>> aux;
};
// seq_len: tokens per sequence (expert choice with group: sequence). shard: the experts this
// process holds (count 0 = all).
MoeComponents make_moe_components(Backend& be, const ModelConfig& cfg, int layer, int64_t seq_len,
                                  ExpertShard shard = {});

class MoeLayer {
 public:
  // dist: the run's layout (null: one process). With expert parallelism (dist->ep_size > 1) this
  // rank holds n/ep experts and its dispatcher exchanges token rows with its group
  // (AllToAllDispatcher); the layer itself has no expert-parallel branches.
  MoeLayer(Backend& be, const ModelConfig& cfg, int layer, int64_t seq_len = 0, const DistContext* dist = nullptr);
  void register_params(ParamTable& table);
  void bind(ParamStore& store);
  void allocate(int64_t n_tokens);
  // Before each optimizer step's micro-batches: the step the coefficient schedules read, and a
  // fresh count of the step's load for the selection bias.
  void begin_step(int64_t step);

  // h (N,d) -> y (N,d) write. aux_out (1 element, F32 or F64, backend memory) write: the sum of
  // the auxiliary losses (coefficients applied), computed on the backend; an empty Tensor skips
  // it. No host synchronisation but route_build's expert offsets (one per layer).
  void forward(Tensor h, Tensor y, Tensor aux_out);
  // The same, the aux sum returned on the host (tests: one more device-to-host read).
  double forward(Tensor h, Tensor y);
  // dy (N,d) -> dh (N,d) acc; parameter gradients acc. aux_scale multiplies aux-loss gradients.
  void backward(Tensor h, Tensor dy, Tensor dh, double aux_scale);
  // Auxiliary-loss-free balancing (DeepSeek-V3), after each optimizer step: b_i -= u for experts
  // loaded above the mean over that step's micro-batches, += u below it. No-op when u = 0.
  void update_selection_bias();

  bool dense() const { return parts_.scorer == nullptr; }
  bool trainable() const { return dense() || parts_.scorer->trainable(); }
  bool reports_act_norms() const { return act_norm_; }
  int n_experts() const { return n_; }
  int n_null() const { return m_; }
  // The counters since the last reset_stats(): reads the device accumulators (one download).
  const MoeLayerStats& stats() const;
  const Routing& routing() const { return routing_; }  // of the last forward (tests, metrics)
  void reset_stats();

 private:
  AuxInputs aux_inputs() const;
  void allocate_stats();
  void collect_stats();
  void gather_balance_stats();

  Backend& be_;
  int n_, m_, d_;
  bool act_norm_;
  double bias_rate_;
  std::string prefix_;
  int64_t n_tokens_ = 0, step_ = 0;
  const DistContext* dist_;
  MoeComponents parts_;
  std::unique_ptr<Dispatcher> dispatcher_;  // local, or all-to-all with expert parallelism
  ExpertBatch batch_;                       // the experts' rows of the last forward (for the backward)

  // activations (saved for the backward)
  TensorBuf scores_, probs_, rank_;  // (N, n+m); rank_ = scores + selection bias
  Routing routing_;
  bool needs_balance_ = false;       // a balancing loss reads balance_
  bool balance_over_ranks_ = false;  // model.moe.aux.balance_scope data_parallel, more than one rank
  BalanceStats balance_;             // views into mb_ (and the other ranks' sums, if over ranks)
  TensorBuf xg_, cg_, eo_;           // (N*kmax, d), (N*kmax, d_low), (N*kmax, d): expert-major
  std::vector<int64_t> dense_offsets_;
  // backward scratch
  TensorBuf dscores_, dprobs_, dslot_gate_, deo_, dxg_, dcg_;

  // Device statistics (F64, backend memory; layout in allocate_stats). mb_: this micro-batch's
  // slot counts [sel (n+m+1) | prob_sums (n+m)], routed counts [n+1], confidence entropy [1],
  // activation-norm column sums [n], aux values [n_aux]. acc_: the sums since reset_stats().
  TensorBuf mb_, acc_;
  Tensor sel_, prob_sums_, sel_and_probs_, routed_ent_, act_, aux_vals_;
  Tensor acc_sel_, acc_routed_ent_, acc_act_, acc_aux_;

  // aux-loss-free balancing
  int bias_index_ = -1;
  Tensor bias_;          // (n) selection bias (saved with the model, not trained)
  TensorBuf step_load_;  // (n) F64: slots per true expert since begin_step (backend memory)

  int64_t tokens_seen_ = 0;  // host counters since reset_stats()
  int micro_batches_ = 0;
  mutable MoeLayerStats stats_;  // filled by stats()
};

}  // namespace am

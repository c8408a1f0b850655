// The decoder-only transformer (../shared/spec/model-and-formats.md), written once against the
// Backend interface:
//   tokens -> embedding -> L x [ x += Attn(RMSNorm(x)) ; x += MoE(RMSNorm(x)) ] -> RMSNorm -> LM head
//   loss = mean cross-entropy of next-token prediction + auxiliary losses of every MoE layer
// Forward saves every activation the backward needs (sized for one micro-batch of B x T tokens);
// backward accumulates parameter gradients into the ParamStore.
#pragma once

#include "config/config.h"
#include "core/tensor_buf.h"
#include "moe/moe_layer.h"
#include "params/params.h"

#include <functional>
#include <memory>
#include <vector>

namespace am {

struct LossParts {
  double ce = 0;        // mean cross-entropy over the micro-batch's targets
  double aux = 0;       // sum over layers of the auxiliary losses (coefficients applied)
  int64_t targets = 0;  // number of targets counted (target >= 0)
  // The backend's update flag (Backend::copy_update_flag), read in the same copy as the losses: 0,
  // or the tag of the first AdamW update that wrote a non-finite value (AdamW::check_update_flag).
  int update_flag = 0;
};

class Transformer {
 public:
  // dist: the run's layout (null: one process); with expert parallelism this rank's table holds
  // its experts only.
  Transformer(Backend& be, const ModelConfig& cfg, int B, int T, const DistContext* dist = nullptr);
  ~Transformer();

  // The parameter table of the whole model (every expert), as one process holds it: the layout of
  // checkpoints. Allocates nothing.
  static ParamTable full_table(Backend& be, const ModelConfig& cfg);

  ParamStore& store() { return *store_; }
  const ModelConfig& config() const { return cfg_; }
  Backend& backend() const { return be_; }
  int micro_batch() const { return B_; }
  int seq_len() const { return T_; }

  // tokens, targets: host arrays of B*T ids (targets < 0 are ignored). grad_scale > 0 prepares the
  // training backward with dL/dloss = grad_scale (1 / grad_accum); grad_scale == 0 evaluates only.
  // Reads the per-token losses back (one download: evaluation, tests); per_token, when given,
  // receives them: B*T values, -log p(target) at each position, 0 where the target is ignored.
  LossParts forward(const int32_t* tokens, const int32_t* targets, double grad_scale,
                    std::vector<double>* per_token = nullptr);
  // The (B*T, V) logits of the last forward(grad_scale 0) (tests; dlogits after a training forward).
  Tensor logits() const { return logits_.t(); }
  // The training forward of one of `divisor` micro-batches of a step that reads the device once
  // (train/step.cpp): as forward(grad_scale > 0), but it reads nothing back; the micro-batch's mean
  // cross-entropy / divisor is added to ce_acc ((1) F64 on the device, Backend::loss_sum_accumulate:
  // the same bits as forward()'s ce / divisor summed on the host), and the sum over layers of the
  // MoE auxiliary losses (each layer writes its own into aux_slot(l) on the device) / divisor to
  // aux_acc ((1) F64 on the device).
  void forward_accumulate(const int32_t* tokens, const int32_t* targets, double grad_scale, int divisor, Tensor ce_acc,
                          Tensor aux_acc);
  // Accumulates dL/dparam (scaled by the forward's grad_scale) into store().all_grads().
  // grads_ready(first, last), when given, is called as soon as the tensors [first, last] of the
  // table hold their final gradients (each layer's, top to bottom), so their reduction across
  // ranks can overlap the rest of the backward pass.
  using GradsReady = std::function<void(int first, int last)>;
  void backward(const GradsReady& grads_ready = {});

  std::vector<MoeLayer*> moe_layers();
  // Around each optimizer step: begin_step sets the step the loss schedules read; end_step runs
  // the auxiliary-loss-free bias updates (after the optimizer update).
  void begin_step(int64_t step);
  void end_step();

 private:
  friend class Decoder;  // model/decode.h: the incremental (KV-cache) forward of a B = 1, T = 1 model
  struct Layer;
  struct Indices {
    int emb = -1, norm_f = -1, lm_head = -1;
  };
  // Declares every parameter in memory order; fills `layers` (with their MoE layers) and `ix`.
  void check_ids(const int32_t* tokens, const int32_t* targets) const;
  void stage_ids(const int32_t* tokens, const int32_t* targets);
  // Everything of forward() before the read-back; sets n_targets.
  void run_forward(const int32_t* tokens, const int32_t* targets, double grad_scale, int64_t& n_targets);
  Tensor token_losses() const;  // the first N_ elements of losses_
  static ParamTable declare(Backend& be, const ModelConfig& cfg, int T, const DistContext* dist,
                            std::vector<std::unique_ptr<Layer>>& layers, Indices& ix);
  Backend& be_;
  ModelConfig cfg_;
  int B_, T_;
  int64_t N_;
  AttnShape attn_;
  std::unique_ptr<ParamStore> store_;
  std::vector<std::unique_ptr<Layer>> layers_;
  int emb_, norm_f_, lm_head_;  // parameter indices (lm_head_ == emb_ when tied)
  double grad_scale_ = 0;

  TensorBuf tokens_, targets_;   // (N) I32
  std::vector<Buffer> staging_;  // pinned host slots of 2N ids (tokens, targets): stage_ids
  size_t staged_ = 0;            // slots used since the last synchronising call
  std::vector<TensorBuf> res_;   // L+1 residual streams (N,d): res_[l] enters layer l
  TensorBuf lnf_, rstdf_;        // (N,d), (N)
  TensorBuf logits_, losses_;    // (N,V) (holds dlogits after a training forward), (N+1+L): the
                                 // per-token losses, the backend's update flag, then each MoE
                                 // layer's aux-loss sum (aux_slot; written on the device)
  Tensor aux_slot(size_t l) const;
  TensorBuf dres_, dln_, dqkv_, datt_;  // backward scratch
};

}  // namespace am

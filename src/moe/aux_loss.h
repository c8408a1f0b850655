// Auxiliary losses of an MoE layer (../shared/spec/selection.md §4). Each writes its value with
// its coefficient (a Schedule: piecewise constant in the step) applied into a one-element F64
// tensor in the backend's memory (no host synchronisation), and adds its gradient into
// dscores / dprobs. T is the number of tokens of the micro-batch; losses are per layer and summed
// over layers (docs/training.md). n true experts, m null experts; scores and probs have n+m columns.
#pragma once

#include "config/config.h"
#include "core/tensor_buf.h"

#include <string>
#include <vector>

namespace am {

// The statistics of the load-balancing losses, over the tokens of their scope
// (model.moe.aux.balance_scope): this rank's micro-batch, or the micro-batches of all W ranks at
// once (data_parallel: summed over ranks, identical on every rank). The vectors are F64 in the
// backend's memory (device memory on the GPU): nothing travels to the host.
struct BalanceStats {
  Tensor selected;    // (>= n+m) F64: slots per id over the scope, before capacity drops
  Tensor prob_sums;   // (n+m) F64: sum over the scope's tokens of P_t[i]
  double tokens = 0;  // tokens in the scope
  // The ranks whose gradients the data-parallel reduction averages when the scope spans them (W),
  // else 1: a rank's share of the gradient of one loss over W ranks' tokens is multiplied by W to
  // survive the reduction's 1/W.
  int replicas = 1;
};

struct AuxInputs {
  Tensor scores;                          // (N, n+m)
  Tensor probs;                           // (N, n+m)
  const BalanceStats* balance = nullptr;  // the balancing losses' statistics (null if none needs them)
  int64_t n_tokens = 0;
  int n_experts = 0;  // n
  int n_null = 0;     // m
  int64_t step = 0;   // for the coefficient schedules
};

class AuxLoss {
 public:
  explicit AuxLoss(Schedule coef) : coef_(std::move(coef)) {}
  virtual ~AuxLoss() = default;
  virtual std::string name() const = 0;                       // the metrics key
  virtual bool needs_balance_stats() const { return false; }  // reads AuxInputs::balance
  // value (1) F64 write (backend memory)
  virtual void forward(const AuxInputs& in, Tensor value) = 0;
  // The value on the host (tests): forward into scratch and download it.
  double forward_value(Backend& be, const AuxInputs& in);
  // scale multiplies the gradient (1 / grad_accum). dscores, dprobs (N, n+m) acc.
  virtual void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) = 0;

 protected:
  Schedule coef_;
};

// Switch load balancing over the n true experts: L = alpha n sum_i f_i Pbar_i, f_i = (slots of
// expert i) / T (no gradient), Pbar_i = mean_t P_t[i], T and both statistics over the scope's
// tokens (AuxInputs::balance). dL/dP_t[i] = alpha n f_i / T for each of this rank's tokens t (times
// replicas: see BalanceStats).
class LoadBalanceLoss final : public AuxLoss {
 public:
  LoadBalanceLoss(Backend& be, Schedule coef) : AuxLoss(std::move(coef)), be_(be) {}
  std::string name() const override { return "load_balance"; }
  bool needs_balance_stats() const override { return true; }
  void forward(const AuxInputs& in, Tensor value) override;
  void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) override;

 private:
  Backend& be_;
  TensorBuf f_;  // (n+m) F64: f of the last forward, for the backward
};

// AdaMoE's null-expert balancing (Eq. 6) over all n+m columns, with the null experts' load
// averaged: f~_i = f_i for true experts, the mean of the null f_j for every null expert;
// L = alpha (n+m) sum_i f~_i Pbar_i.
class NullLoadBalanceLoss final : public AuxLoss {
 public:
  NullLoadBalanceLoss(Backend& be, Schedule coef) : AuxLoss(std::move(coef)), be_(be) {}
  std::string name() const override { return "null_load_balance"; }
  bool needs_balance_stats() const override { return true; }
  void forward(const AuxInputs& in, Tensor value) override;
  void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) override;

 private:
  Backend& be_;
  TensorBuf f_;  // (n+m) F64: f~ of the last forward, for the backward
};

// Router z-loss (ST-MoE): L = beta (1/T) sum_t logsumexp(z_t)^2; dz_t = 2 beta lse_t P_t / T.
class ZLoss final : public AuxLoss {
 public:
  ZLoss(Backend& be, Schedule coef) : AuxLoss(std::move(coef)), be_(be) {}
  std::string name() const override { return "z_loss"; }
  void forward(const AuxInputs& in, Tensor value) override;
  void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) override;

 private:
  Backend& be_;
  TensorBuf lse_;  // (N) saved by forward
};

// Confidence entropy (Huang et al.; AoE Eq. 8): L = gamma (1/T) sum_t -sum_i P_t[i] log P_t[i].
class EntropyLoss final : public AuxLoss {
 public:
  EntropyLoss(Backend& be, Schedule coef) : AuxLoss(std::move(coef)), be_(be) {}
  std::string name() const override { return "entropy"; }
  void forward(const AuxInputs& in, Tensor value) override;
  void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) override;

 private:
  Backend& be_;
};

}  // namespace am

// Auxiliary losses of an MoE layer (../shared/spec/selection.md §4). Each returns its value with
// its coefficient applied, and adds its gradient into dscores / dprobs. T is the number of tokens
// of the micro-batch; losses are per layer and summed over layers (docs/training.md).
#pragma once

#include "core/tensor_buf.h"

#include <string>
#include <vector>

namespace am {

struct AuxInputs {
  Tensor scores;  // (N,n)
  Tensor probs;   // (N,n)
  const std::vector<int64_t>* expert_offsets = nullptr;  // (n+1): assignments per expert
  int64_t n_tokens = 0;
  int n_experts = 0;
};

class AuxLoss {
 public:
  explicit AuxLoss(double coef) : coef_(coef) {}
  virtual ~AuxLoss() = default;
  virtual std::string name() const = 0;  // the metrics key
  virtual double forward(const AuxInputs& in) = 0;
  // scale multiplies the gradient (1 / grad_accum). dscores, dprobs (N,n) acc.
  virtual void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) = 0;
  double coef() const { return coef_; }

 protected:
  double coef_;
};

// Switch load balancing: L = alpha * n * sum_i f_i * Pbar_i, f_i = (tokens routed to i) / T (no
// gradient), Pbar_i = mean_t P_t[i]. dL/dP_t[i] = alpha * n * f_i / T.
class LoadBalanceLoss final : public AuxLoss {
 public:
  LoadBalanceLoss(Backend& be, double coef) : AuxLoss(coef), be_(be) {}
  std::string name() const override { return "load_balance"; }
  double forward(const AuxInputs& in) override;
  void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) override;

 private:
  std::vector<double> load_fraction(const AuxInputs& in) const;
  Backend& be_;
};

// Router z-loss (ST-MoE): L = beta * (1/T) sum_t logsumexp(z_t)^2; dz_t = 2 beta lse_t P_t / T.
class ZLoss final : public AuxLoss {
 public:
  ZLoss(Backend& be, double coef) : AuxLoss(coef), be_(be) {}
  std::string name() const override { return "z_loss"; }
  double forward(const AuxInputs& in) override;
  void backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) override;

 private:
  Backend& be_;
  TensorBuf lse_;  // (N) saved by forward
};

}  // namespace am

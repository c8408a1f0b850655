// Scorer: where each token's per-expert scores come from (../shared/spec/selection.md §2).
//   scores (N,n): what the selector ranks (router logits z; later: activation norms).
//   probs  (N,n): the probabilities the auxiliary losses and metrics use (softmax of the scores).
#pragma once

#include "core/backend.h"
#include "model/params.h"

#include <memory>
#include <string>

namespace am {

struct MoeConfig;

class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual void register_params(ParamTable& table) = 0;
  virtual void bind(ParamStore& store) = 0;
  // h (N,d) -> scores (N,n) write, probs (N,n) write
  virtual void forward(Tensor h, Tensor scores, Tensor probs) = 0;
  // dscores, dprobs (N,n): dL/dscores and dL/dprobs (used as scratch); dh (N,d) acc; params acc.
  virtual void backward(Tensor h, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) = 0;
  // True when scores are logits whose softmax is probs (the router z-loss needs that).
  virtual bool scores_are_logits() const = 0;
};

// Traditional linear router: z = h W_r^T, W_r (n,d) exported as `<prefix>.gate.weight`.
class RouterScorer final : public Scorer {
 public:
  RouterScorer(Backend& be, std::string prefix, int n_experts, int d_model, double init_std);
  void register_params(ParamTable& table) override;
  void bind(ParamStore& store) override;
  void forward(Tensor h, Tensor scores, Tensor probs) override;
  void backward(Tensor h, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) override;
  bool scores_are_logits() const override { return true; }

 private:
  Backend& be_;
  std::string prefix_;
  int n_, d_;
  double init_std_;
  int w_index_ = -1;
  Tensor w_, dw_;  // (n, d)
};

}  // namespace am

// Scorer: where each token's per-expert scores come from (../shared/spec/selection.md §2).
//   scores (N, n+m): what the selector ranks (router logits; AoE activation norms), one column per
//                    true expert, then one per null expert (AdaMoE) when m > 0.
//   probs  (N, n+m): softmax of the scores over all n+m columns: what the auxiliary losses, the
//                    top-p and expert-choice selectors and the metrics use.
#pragma once

#include "core/tensor_buf.h"
#include "params/params.h"

#include <memory>
#include <string>

namespace am {

class Experts;
class FactorizedExperts;

class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual void register_params(ParamTable& table) = 0;
  virtual void bind(ParamStore& store) = 0;
  virtual void allocate(int64_t n_tokens) = 0;
  // h (N,d) -> scores (N,n+m) write, probs (N,n+m) write
  virtual void forward(Tensor h, Tensor scores, Tensor probs) = 0;
  // dscores, dprobs (N,n+m): dL/dscores and dL/dprobs (used as scratch); dh (N,d) acc; params acc.
  virtual void backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) = 0;
  // True when scores are logits whose softmax is probs (the router z-loss needs that).
  virtual bool scores_are_logits() const = 0;
  // AoE's cache: the latent C (N, n*d_low) that the selected experts reuse, and the buffer its
  // gradient from the experts is scattered into before backward(); empty Tensors otherwise.
  virtual Tensor latent() const { return {}; }
  virtual Tensor latent_grad() const { return {}; }
  // False for scorers that can only evaluate (router-free selection at an expert's inner node).
  virtual bool trainable() const { return true; }
};

// z = h W_r^T (N, n+m), P = softmax(z). W_r is `<prefix>.gate.weight` (n,d), followed by
// `<prefix>.gate_null.weight` (m,d) for null experts (one (n+m, d) matrix).
class RouterScorer final : public Scorer {
 public:
  RouterScorer(Backend& be, std::string prefix, int n_experts, int n_null, int d_model, double init_std);
  void register_params(ParamTable& table) override;
  void bind(ParamStore& store) override;
  void allocate(int64_t) override {}
  void forward(Tensor h, Tensor scores, Tensor probs) override;
  void backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) override;
  bool scores_are_logits() const override { return true; }

 private:
  Backend& be_;
  std::string prefix_;
  int n_, m_, d_;
  double init_std_;
  int w_index_ = -1;
  Tensor w_, dw_;  // (n+m, d)
};

// The large router of AoE Table 2 config 4: z = SiLU(h A^T) B^T with A `<prefix>.gate.w_in.weight`
// (hidden, d) and B `<prefix>.gate.w_out.weight` (n+m, hidden); P = softmax(z). With `linear`,
// z = (h A^T) B^T: no activation (the AoE authors' BigRouter, hidden 1012).
class LargeRouterScorer final : public Scorer {
 public:
  LargeRouterScorer(Backend& be, std::string prefix, int n_total, int hidden, int d_model, double init_std,
                    bool linear = false);
  void register_params(ParamTable& table) override;
  void bind(ParamStore& store) override;
  void allocate(int64_t n_tokens) override;
  void forward(Tensor h, Tensor scores, Tensor probs) override;
  void backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) override;
  bool scores_are_logits() const override { return true; }

 private:
  Backend& be_;
  std::string prefix_;
  int nt_, hid_, d_;
  double init_std_;
  bool linear_;
  int a_index_ = -1, b_index_ = -1;
  Tensor a_, da_, b_, db_;
  TensorBuf pre_, act_, dact_, dpre_;  // (N, hidden); linear: pre_ and dact_ only
};

// Activation norms (AoE): every expert's score is the norm (L2, L1 or Linf) of its activation at
// a node. Node "latent": C = h W_down^T for all experts in one GEMM (the factorized experts' stacked
// W_down), s_i = ||C_i||, and C is kept for the selected experts to reuse. Nodes gate, up, act,
// glu, out: every expert runs up to the node for every token (router-free selection in a model
// trained with a router; evaluation only). Null experts get learnable scores
// `<prefix>.null_experts.score` (m), initialised near the norms' starting scale.
class ActNormScorer final : public Scorer {
 public:
  ActNormScorer(Backend& be, std::string prefix, std::string node, Backend::NormKind norm, int n_experts, int n_null,
                int d_model, double null_init, Experts* experts);
  void register_params(ParamTable& table) override;
  void bind(ParamStore& store) override;
  void allocate(int64_t n_tokens) override;
  void forward(Tensor h, Tensor scores, Tensor probs) override;
  void backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) override;
  bool scores_are_logits() const override { return false; }
  Tensor latent() const override { return latent_node() ? Tensor(c_) : Tensor(); }
  Tensor latent_grad() const override { return latent_node() ? Tensor(dc_) : Tensor(); }
  bool trainable() const override { return latent_node(); }

 private:
  bool latent_node() const { return node_ == "latent"; }
  Backend& be_;
  std::string prefix_, node_;
  Backend::NormKind norm_;
  int n_, m_, d_;
  double null_init_;
  Experts* experts_;
  FactorizedExperts* factorized_ = nullptr;
  int null_index_ = -1;
  Tensor null_, dnull_;            // (m)
  TensorBuf null_sums_;            // (n+m) F64: column sums of dscores (the null scores' gradient)
  TensorBuf c_, dc_;               // latent: (N, n*d_low)
  TensorBuf act_, col_, s1_, s2_;  // other nodes: (N, width), (N, 1), (N, hidden) x2
};

Backend::NormKind norm_kind(const std::string& name);  // "l2" | "l1" | "linf"

}  // namespace am

#include "moe/experts.h"
#include "moe/scorer.h"

namespace am {

Backend::NormKind norm_kind(const std::string& name) {
  if (name == "l2") return Backend::NormKind::L2;
  if (name == "l1") return Backend::NormKind::L1;
  if (name == "linf") return Backend::NormKind::Linf;
  throw UserError(fmt::format("unknown activation norm '{}'", name), "valid norms: l2, l1, linf");
}

ActNormScorer::ActNormScorer(Backend& be, std::string prefix, std::string node, Backend::NormKind norm, int n_experts,
                             int n_null, int d_model, double null_init, Experts* experts)
    : be_(be),
      prefix_(std::move(prefix)),
      node_(std::move(node)),
      norm_(norm),
      n_(n_experts),
      m_(n_null),
      d_(d_model),
      null_init_(null_init),
      experts_(experts) {
  if (latent_node()) {
    factorized_ = dynamic_cast<FactorizedExperts*>(experts);
    if (!factorized_) {
      throw UserError("model.moe.scorer.node latent needs factorized experts",
                      "set model.moe.expert.type: factorized with a d_low, or choose another node");
    }
  }
}

void ActNormScorer::register_params(ParamTable& table) {
  if (m_ > 0) null_index_ = table.add(prefix_ + ".null_experts.score", {m_}, Init::Constant, null_init_);
}

void ActNormScorer::bind(ParamStore& store) {
  if (m_ > 0) {
    null_ = store.value(null_index_);
    dnull_ = store.grad(null_index_);
  }
}

void ActNormScorer::allocate(int64_t n_tokens) {
  const DType dt = be_.dtype();
  if (latent_node()) {
    const int64_t width = static_cast<int64_t>(n_) * factorized_->d_low();
    c_ = TensorBuf(be_, be_.act_dtype(), {n_tokens, width});  // the cached latent: a saved activation
    dc_ = TensorBuf(be_, dt, {n_tokens, width});
  } else {
    act_ = TensorBuf(be_, dt, {n_tokens, experts_->node_width(node_, d_)});
    col_ = TensorBuf(be_, dt, {n_tokens, 1});
    s1_ = TensorBuf(be_, dt, {n_tokens, experts_->hidden()});
    s2_ = TensorBuf(be_, dt, {n_tokens, experts_->hidden()});
  }
}

void ActNormScorer::forward(Tensor h, Tensor scores, Tensor probs) {
  if (latent_node()) {
    be_.matmul(c_, h, false, factorized_->stacked_down(), true, 1.0, 0.0);  // C (N, n*d_low): Eq. 4
    be_.block_norms(scores, c_, n_, norm_);                                 // s_i = ||C_i||
  } else {
    for (int e = 0; e < n_; ++e) {  // every expert up to the node, every token
      experts_->node_activation(e, node_, h, act_, s1_, s2_);
      be_.block_norms(col_, act_, 1, norm_);
      be_.copy_columns(scores, col_, e);
    }
  }
  if (m_ > 0) be_.broadcast_columns(scores, null_, n_);
  be_.softmax_rows(probs, scores);
}

void ActNormScorer::backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) {
  if (!latent_node()) {
    throw UserError(fmt::format("activation-norm node '{}' is for evaluation only: it has no backward", node_),
                    "train AoE with model.moe.scorer.node: latent (and factorized experts)");
  }
  be_.softmax_rows_backward(dscores, dprobs, probs);
  if (m_ > 0) {  // d null_j += sum_t dscores[t][n + j], on the backend (no host round trip)
    if (null_sums_.empty()) null_sums_ = TensorBuf(be_, DType::F64, {static_cast<int64_t>(n_ + m_)});
    be_.column_sums_to(null_sums_, dscores);
    be_.add_vector_to_rows(Tensor(dnull_.data, dnull_.dtype, {1, m_}), Tensor(null_sums_).rows(n_, m_), 1.0);
  }
  // dC already holds the experts' gradient (scattered by the layer); add the norms' gradient.
  be_.block_norms_backward(dc_, dscores, c_, scores, n_, norm_);
  be_.matmul(factorized_->stacked_down_grad(), dc_, true, h, false, 1.0, 1.0);  // dW_down += dC^T h
  be_.matmul(dh, dc_, false, factorized_->stacked_down(), false, 1.0, 1.0);     // dh += dC W_down
}

}  // namespace am

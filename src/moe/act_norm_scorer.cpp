// Scorer act_norm: the norm of each expert's activation at a node (ActNormScorer, scorer.h; AoE).
#include <fmt/format.h>

#include <cmath>

#include "moe/experts.h"
#include "moe/scorer.h"
#include "moe/strategies.h"

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

namespace {

using Msg = std::optional<std::string>;

std::optional<std::string> latent_needs_factorized(const Config& c, const ShowKey& show) {
  const MoeConfig& m = c.model.moe;
  if (m.scorer.type != "act_norm" || m.scorer.node != "latent" || expert_of(m).latent) {
    return std::nullopt;
  }
  return fmt::format(
      "{} with {} needs model.moe.expert.type: factorized (the latent x W_down exists "
      "only in factorized experts), but {}",
      show("model.moe.scorer.type"), show("model.moe.scorer.node"), show("model.moe.expert.type"));
}

const bool kRegistered = register_strategy([] {
  ScorerStrategy s;
  s.name = "act_norm";
  s.order = 3;
  s.doc = "the norm of each expert's activation at scorer.node (AoE)";
  s.keys = {
      config_enum_key("model.moe.scorer.node", "latent", {"latent", "gate", "up", "act", "glu", "out"},
                      "(act_norm) where the norm is taken: latent = x W_down (AoE; factorized experts); "
                      "gate = x W_g, up = x W_p, act = SiLU(x W_g), glu = act * up, out = the expert's "
                      "output are evaluation-only (every expert runs to the node; training refuses them)",
                      AM_FIELD(model.moe.scorer.node)),
      config_enum_key("model.moe.scorer.norm", "l2", {"l2", "l1", "linf"},
                      "(act_norm) the norm of the activation vector", AM_FIELD(model.moe.scorer.norm)),
  };
  s.rules = {
      {"model.moe.scorer.type act_norm with model.moe.scorer.node latent needs "
       "model.moe.expert.type factorized (the latent is x W_down); other nodes are allowed but "
       "evaluation-only: the trainer refuses them",
       latent_needs_factorized}};
  s.activation_norms = true;
  s.params = [](const MoeConfig& m, int) -> int64_t { return m.selector.n_null; };  // a learnable score per null
  s.make = [](Backend& be, const ScorerArgs& a) -> std::unique_ptr<Scorer> {
    const MoeConfig& m = a.cfg.moe;
    const int d = a.cfg.d_model;
    // Null scores start at the scale of the L2 norms at initialisation (||x W_down|| with RMS-normed
    // x: init_std * sqrt(d * d_low)), so null experts are chosen from the start (docs/selection.md).
    const auto* factorized = dynamic_cast<const FactorizedExperts*>(a.experts);
    const int rank = factorized ? factorized->d_low() : a.experts->hidden();
    return std::make_unique<ActNormScorer>(be, a.prefix, m.scorer.node, norm_kind(m.scorer.norm), m.n_experts,
                                           m.selector.n_null, d, a.init_std * std::sqrt(static_cast<double>(d) * rank),
                                           a.experts);
  };
  return s;
}());

}  // namespace

}  // namespace am

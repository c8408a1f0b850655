// Scorer router: z = h W_r^T, P = softmax(z) (RouterScorer, scorer.h; Mixtral's router).
#include "moe/scorer.h"
#include "moe/strategies.h"

namespace am {

RouterScorer::RouterScorer(Backend& be, std::string prefix, int n_experts, int n_null, int d_model, double init_std)
    : be_(be), prefix_(std::move(prefix)), n_(n_experts), m_(n_null), d_(d_model), init_std_(init_std) {}

void RouterScorer::register_params(ParamTable& table) {
  w_index_ = table.add(prefix_ + ".gate.weight", {n_, d_}, Init::Normal, init_std_);
  if (m_ > 0) table.add(prefix_ + ".gate_null.weight", {m_, d_}, Init::Normal, init_std_);
}

void RouterScorer::bind(ParamStore& store) {
  // gate.weight and gate_null.weight were declared back to back: one (n+m, d) matrix.
  const Tensor w = store.value(w_index_), dw = store.grad(w_index_);
  w_ = Tensor(w.data, w.dtype, {n_ + m_, d_});
  dw_ = Tensor(dw.data, dw.dtype, {n_ + m_, d_});
}

void RouterScorer::forward(Tensor h, Tensor scores, Tensor probs) {
  be_.matmul(scores, h, false, w_, true, 1.0, 0.0);  // z (N,n+m) = h (N,d) W_r^T
  be_.softmax_rows(probs, scores);                   // P = softmax(z)
}

void RouterScorer::backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) {
  be_.softmax_rows_backward(dscores, dprobs, probs);    // dz += dP through the softmax
  be_.matmul(dw_, dscores, true, h, false, 1.0, 1.0);   // dW_r (n+m,d) += dz^T h
  be_.matmul(dh, dscores, false, w_, false, 1.0, 1.0);  // dh (N,d) += dz W_r
}

namespace {

const bool kRegistered = register_strategy([] {
  ScorerStrategy s;
  s.name = "router";
  s.order = 1;
  s.doc = "x W_r";
  s.params = [](const MoeConfig& m, int d_model) -> int64_t {
    return int64_t{m.n_experts + m.selector.n_null} * d_model;  // W_r [n + n_null, d]
  };
  s.logits = true;
  s.mixtral_layout = true;
  s.make = [](Backend& be, const ScorerArgs& a) -> std::unique_ptr<Scorer> {
    const MoeConfig& m = a.cfg.moe;
    return std::make_unique<RouterScorer>(be, a.prefix, m.n_experts, m.selector.n_null, a.cfg.d_model, a.init_std);
  };
  return s;
}());

}  // namespace

}  // namespace am

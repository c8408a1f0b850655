#include "moe/scorer.h"

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

LargeRouterScorer::LargeRouterScorer(Backend& be, std::string prefix, int n_total, int hidden, int d_model,
                                     double init_std, bool linear)
    : be_(be),
      prefix_(std::move(prefix)),
      nt_(n_total),
      hid_(hidden),
      d_(d_model),
      init_std_(init_std),
      linear_(linear) {}

void LargeRouterScorer::register_params(ParamTable& table) {
  a_index_ = table.add(prefix_ + ".gate.w_in.weight", {hid_, d_}, Init::Normal, init_std_);
  b_index_ = table.add(prefix_ + ".gate.w_out.weight", {nt_, hid_}, Init::Normal, init_std_);
}

void LargeRouterScorer::bind(ParamStore& store) {
  a_ = store.value(a_index_);
  da_ = store.grad(a_index_);
  b_ = store.value(b_index_);
  db_ = store.grad(b_index_);
}

void LargeRouterScorer::allocate(int64_t n_tokens) {
  for (TensorBuf* t : {&pre_, &dact_}) *t = TensorBuf(be_, be_.dtype(), {n_tokens, hid_});
  if (linear_) return;  // the hidden layer is pre_ itself, and its gradient dact_
  for (TensorBuf* t : {&act_, &dpre_}) *t = TensorBuf(be_, be_.dtype(), {n_tokens, hid_});
}

void LargeRouterScorer::forward(Tensor h, Tensor scores, Tensor probs) {
  be_.matmul(pre_, h, false, a_, true, 1.0, 0.0);  // (N, hidden) = h A^T
  if (!linear_) be_.silu_forward(act_, pre_);
  const Tensor act = linear_ ? pre_ : act_;
  be_.matmul(scores, act, false, b_, true, 1.0, 0.0);  // z (N, n+m) = act B^T
  be_.softmax_rows(probs, scores);
}

void LargeRouterScorer::backward(Tensor h, Tensor scores, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) {
  be_.softmax_rows_backward(dscores, dprobs, probs);                       // dz
  be_.matmul(db_, dscores, true, linear_ ? pre_ : act_, false, 1.0, 1.0);  // dB (n+m, hidden) += dz^T act
  be_.matmul(dact_, dscores, false, b_, false, 1.0, 0.0);                  // dact (N, hidden) = dz B
  Tensor dpre = dact_;                                                     // linear: dpre = dact
  if (!linear_) {
    be_.zero(dpre_);
    be_.silu_backward(dpre_, dact_, pre_);
    dpre = dpre_;
  }
  be_.matmul(da_, dpre, true, h, false, 1.0, 1.0);   // dA (hidden, d) += dpre^T h
  be_.matmul(dh, dpre, false, a_, false, 1.0, 1.0);  // dh += dpre A
}

}  // namespace am

#include "moe/scorer.h"

namespace am {

RouterScorer::RouterScorer(Backend& be, std::string prefix, int n_experts, int d_model,
                           double init_std)
    : be_(be), prefix_(std::move(prefix)), n_(n_experts), d_(d_model), init_std_(init_std) {}

void RouterScorer::register_params(ParamTable& table) {
  w_index_ = table.add(prefix_ + ".gate.weight", {n_, d_}, Init::Normal, init_std_);
}

void RouterScorer::bind(ParamStore& store) {
  w_ = store.value(w_index_);
  dw_ = store.grad(w_index_);
}

void RouterScorer::forward(Tensor h, Tensor scores, Tensor probs) {
  be_.matmul(scores, h, false, w_, true, 1.0, 0.0);  // z (N,n) = h (N,d) W_r^T
  be_.softmax_rows(probs, scores);                    // P = softmax(z)
}

void RouterScorer::backward(Tensor h, Tensor probs, Tensor dscores, Tensor dprobs, Tensor dh) {
  be_.softmax_rows_backward(dscores, dprobs, probs);  // dz += dP through the softmax
  be_.matmul(dw_, dscores, true, h, false, 1.0, 1.0);  // dW_r (n,d) += dz^T h
  be_.matmul(dh, dscores, false, w_, false, 1.0, 1.0);  // dh (N,d) += dz W_r
}

}  // namespace am

#include "moe/aux_loss.h"

#include "params/params.h"

namespace am {
namespace {

// f (or AdaMoE's f~, null columns averaged) into `f` and alpha * width * sum_i f_i Pbar_i into
// `value`, both on the backend (Backend::balance_loss), over the balance scope.
void balance_forward(Backend& be, const AuxInputs& in, TensorBuf& f, bool average_nulls, double alpha, int width,
                     Tensor value) {
  const int64_t nt = in.n_experts + in.n_null;
  if (f.empty() || f.t().numel() != nt) f = TensorBuf(be, DType::F64, {nt});
  const BalanceStats& b = *in.balance;
  be.balance_loss(value, f, b.selected, b.prob_sums, in.n_experts, average_nulls, b.tokens, alpha * width);
}

// dP_t[i] += scale * replicas * alpha * width * f_i / T, for this rank's tokens t
void balance_grad(Backend& be, const AuxInputs& in, Tensor f, double alpha, int width, Tensor dprobs, double scale) {
  const BalanceStats& b = *in.balance;
  const double c = scale * b.replicas * alpha * width / b.tokens;
  be.add_vector_to_rows(dprobs, f, c);
}

}  // namespace

double AuxLoss::forward_value(Backend& be, const AuxInputs& in) {
  TensorBuf v(be, DType::F64, {1});
  forward(in, v);
  return download_as_double(be, v)[0];
}

void LoadBalanceLoss::forward(const AuxInputs& in, Tensor value) {
  balance_forward(be_, in, f_, false, coef_.at(in.step), in.n_experts, value);
}

void LoadBalanceLoss::backward(const AuxInputs& in, Tensor, Tensor dprobs, double scale) {
  balance_grad(be_, in, f_, coef_.at(in.step), in.n_experts, dprobs, scale);
}

void NullLoadBalanceLoss::forward(const AuxInputs& in, Tensor value) {
  balance_forward(be_, in, f_, true, coef_.at(in.step), in.n_experts + in.n_null, value);
}

void NullLoadBalanceLoss::backward(const AuxInputs& in, Tensor, Tensor dprobs, double scale) {
  balance_grad(be_, in, f_, coef_.at(in.step), in.n_experts + in.n_null, dprobs, scale);
}

void ZLoss::forward(const AuxInputs& in, Tensor value) {
  if (lse_.empty() || lse_.t().dim(0) != in.n_tokens) lse_ = TensorBuf(be_, be_.dtype(), {in.n_tokens});
  be_.logsumexp_rows(lse_, in.scores);
  be_.sum_squares_to(value, lse_, coef_.at(in.step), static_cast<double>(in.n_tokens));
}

void ZLoss::backward(const AuxInputs& in, Tensor dscores, Tensor, double scale) {
  be_.axpy_rows(dscores, in.probs, lse_, 2.0 * coef_.at(in.step) * scale / static_cast<double>(in.n_tokens));
}

void EntropyLoss::forward(const AuxInputs& in, Tensor value) {
  be_.entropy_sum_to(value, in.probs, coef_.at(in.step), static_cast<double>(in.n_tokens));
}

void EntropyLoss::backward(const AuxInputs& in, Tensor, Tensor dprobs, double scale) {
  be_.entropy_backward(dprobs, in.probs, coef_.at(in.step) * scale / static_cast<double>(in.n_tokens));
}

}  // namespace am

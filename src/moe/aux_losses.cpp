#include "moe/aux_loss.h"

namespace am {

std::vector<double> LoadBalanceLoss::load_fraction(const AuxInputs& in) const {
  const auto& off = *in.expert_offsets;
  std::vector<double> f(static_cast<size_t>(in.n_experts));
  for (int i = 0; i < in.n_experts; ++i) {
    f[i] = static_cast<double>(off[i + 1] - off[i]) / static_cast<double>(in.n_tokens);
  }
  return f;
}

double LoadBalanceLoss::forward(const AuxInputs& in) {
  const std::vector<double> f = load_fraction(in);
  const std::vector<double> psum = be_.column_sums(in.probs);
  double dot = 0;
  for (int i = 0; i < in.n_experts; ++i) dot += f[i] * psum[i] / static_cast<double>(in.n_tokens);
  return coef_ * in.n_experts * dot;
}

void LoadBalanceLoss::backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) {
  std::vector<double> g = load_fraction(in);
  const double c = scale * coef_ * in.n_experts / static_cast<double>(in.n_tokens);
  for (double& x : g) x *= c;
  be_.add_to_rows(dprobs, g);
}

double ZLoss::forward(const AuxInputs& in) {
  if (lse_.empty() || lse_.t().dim(0) != in.n_tokens) {
    lse_ = TensorBuf(be_, be_.dtype(), {in.n_tokens});
  }
  be_.logsumexp_rows(lse_, in.scores);
  return coef_ * be_.sum_squares(lse_) / static_cast<double>(in.n_tokens);
}

void ZLoss::backward(const AuxInputs& in, Tensor dscores, Tensor dprobs, double scale) {
  be_.axpy_rows(dscores, in.probs, lse_, 2.0 * coef_ * scale / static_cast<double>(in.n_tokens));
}

}  // namespace am

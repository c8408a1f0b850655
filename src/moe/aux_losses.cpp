#include "moe/aux_loss.h"

namespace am {
namespace {

// f~ of AdaMoE: the selection fraction of each of the n+m columns, null columns averaged; with
// `average_nulls` false, f of the n true experts and 0 for null columns. Over the balance scope.
std::vector<double> load_fraction(const AuxInputs& in, bool average_nulls) {
  const int n = in.n_experts, m = in.n_null;
  const auto& sel = in.balance->selected;
  const double T = static_cast<double>(in.balance->tokens);
  std::vector<double> f(static_cast<size_t>(n + m), 0.0);
  for (int i = 0; i < n; ++i) f[i] = static_cast<double>(sel[i]) / T;
  if (average_nulls && m > 0) {
    double mean = 0;
    for (int j = n; j < n + m; ++j) mean += static_cast<double>(sel[j]) / T / m;
    for (int j = n; j < n + m; ++j) f[j] = mean;
  }
  return f;
}

// alpha * width * sum_i f_i Pbar_i
double balance_value(const AuxInputs& in, const std::vector<double>& f, double alpha, int width) {
  const BalanceStats& b = *in.balance;
  double dot = 0;
  for (size_t i = 0; i < f.size(); ++i) dot += f[i] * b.prob_sums[i] / static_cast<double>(b.tokens);
  return alpha * width * dot;
}

// dP_t[i] += scale * replicas * alpha * width * f_i / T, for this rank's tokens t
void balance_grad(Backend& be, const AuxInputs& in, std::vector<double> f, double alpha, int width,
                  Tensor dprobs, double scale) {
  const BalanceStats& b = *in.balance;
  const double c = scale * b.replicas * alpha * width / static_cast<double>(b.tokens);
  for (double& x : f) x *= c;
  be.add_to_rows(dprobs, f);
}

}  // namespace

double LoadBalanceLoss::forward(const AuxInputs& in) {
  return balance_value(in, load_fraction(in, false), coef_.at(in.step), in.n_experts);
}

void LoadBalanceLoss::backward(const AuxInputs& in, Tensor, Tensor dprobs, double scale) {
  balance_grad(be_, in, load_fraction(in, false), coef_.at(in.step), in.n_experts, dprobs, scale);
}

double NullLoadBalanceLoss::forward(const AuxInputs& in) {
  return balance_value(in, load_fraction(in, true), coef_.at(in.step), in.n_experts + in.n_null);
}

void NullLoadBalanceLoss::backward(const AuxInputs& in, Tensor, Tensor dprobs, double scale) {
  balance_grad(be_, in, load_fraction(in, true), coef_.at(in.step), in.n_experts + in.n_null, dprobs, scale);
}

double ZLoss::forward(const AuxInputs& in) {
  if (lse_.empty() || lse_.t().dim(0) != in.n_tokens) lse_ = TensorBuf(be_, be_.dtype(), {in.n_tokens});
  be_.logsumexp_rows(lse_, in.scores);
  return coef_.at(in.step) * be_.sum_squares(lse_) / static_cast<double>(in.n_tokens);
}

void ZLoss::backward(const AuxInputs& in, Tensor dscores, Tensor, double scale) {
  be_.axpy_rows(dscores, in.probs, lse_, 2.0 * coef_.at(in.step) * scale / static_cast<double>(in.n_tokens));
}

double EntropyLoss::forward(const AuxInputs& in) {
  return coef_.at(in.step) * be_.entropy_sum(in.probs) / static_cast<double>(in.n_tokens);
}

void EntropyLoss::backward(const AuxInputs& in, Tensor, Tensor dprobs, double scale) {
  be_.entropy_backward(dprobs, in.probs, coef_.at(in.step) * scale / static_cast<double>(in.n_tokens));
}

}  // namespace am

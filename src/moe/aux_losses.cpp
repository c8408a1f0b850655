// The auxiliary losses (aux_loss.h) and their registrations (moe/strategies.h): one key each,
// model.moe.aux.<name>, a coefficient schedule; a loss is on when its coefficient is.
#include <fmt/format.h>

#include "moe/aux_loss.h"
#include "moe/strategies.h"
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

namespace {

using Msg = std::optional<std::string>;

// A loss whose only key is its coefficient, model.moe.aux.<name> (default `dflt`).
template <typename Loss>
AuxLossStrategy aux_loss(std::string name, int order, std::string dflt, std::string doc, Binding field,
                         std::function<const Schedule&(const MoeConfig&)> coefficient) {
  AuxLossStrategy s;
  s.name = name;
  s.order = order;
  s.doc = doc;
  s.keys = {config_key("model.moe.aux." + name, std::move(dflt), at_least(0), std::move(doc), std::move(field))};
  s.coefficient = coefficient;
  s.make = [coefficient](Backend& be, const MoeConfig& m) -> std::unique_ptr<AuxLoss> {
    return std::make_unique<Loss>(be, coefficient(m));
  };
  return s;
}

std::optional<std::string> load_balance_without_nulls(const Config& c, const ShowKey& show) {
  const MoeConfig& m = c.model.moe;
  if (m.selector.n_null == 0 || !m.aux.load_balance.active()) return std::nullopt;
  return fmt::format(
      "{} must be 0 with {}: AdaMoE's loss model.moe.aux.null_load_balance (over n_experts "
      "+ n_null, the null experts' loads averaged) replaces it; set "
      "model.moe.aux.load_balance: 0 and model.moe.aux.null_load_balance instead",
      show("model.moe.aux.load_balance"), show("model.moe.selector.n_null"));
}

std::optional<std::string> null_balance_needs_nulls(const Config& c, const ShowKey& show) {
  const MoeConfig& m = c.model.moe;
  if (!m.aux.null_load_balance.active() || m.selector.n_null > 0) return std::nullopt;
  return fmt::format(
      "{} needs null experts, but {}: set model.moe.selector.n_null > 0, or use "
      "model.moe.aux.load_balance (the plain balancing loss) instead",
      show("model.moe.aux.null_load_balance"), show("model.moe.selector.n_null"));
}

std::optional<std::string> z_loss_needs_logits(const Config& c, const ShowKey& show) {
  const MoeConfig& m = c.model.moe;
  if (!m.aux.z_loss.active() || scorer_of(m).logits) return std::nullopt;
  std::vector<std::string> routers;
  for (const ScorerInfo* s : scorer_strategies()) {
    if (s->logits) routers.push_back(s->name);
  }
  return fmt::format(
      "{} needs a router scorer ({}; the z-loss penalises router logits), but {}; set model.moe.aux.z_loss: 0",
      show("model.moe.aux.z_loss"), fmt::join(routers, " or "), show("model.moe.scorer.type"));
}

const bool kRegistered = [] {
  AuxLossStrategy lb = aux_loss<LoadBalanceLoss>(
      "load_balance", 1, "0.01", "Switch load-balancing loss coefficient (alpha); must be 0 with null experts",
      AM_FIELD(model.moe.aux.load_balance), [](const MoeConfig& m) -> const Schedule& { return m.aux.load_balance; });
  lb.rules = {
      {"with model.moe.selector.n_null > 0, model.moe.aux.load_balance is 0 "
       "(model.moe.aux.null_load_balance, AdaMoE's loss averaged over the null experts, replaces it)",
       load_balance_without_nulls}};
  AuxLossStrategy nlb = aux_loss<NullLoadBalanceLoss>(
      "null_load_balance", 2, "0.0",
      "AdaMoE load balancing over n_experts + n_null with the null experts' loads averaged (needs n_null > 0)",
      AM_FIELD(model.moe.aux.null_load_balance),
      [](const MoeConfig& m) -> const Schedule& { return m.aux.null_load_balance; });
  nlb.rules = {{"model.moe.aux.null_load_balance > 0 needs model.moe.selector.n_null > 0", null_balance_needs_nulls}};
  AuxLossStrategy z = aux_loss<ZLoss>(
      "z_loss", 3, "0.0", "router z-loss coefficient (beta); router and large_router scorers only",
      AM_FIELD(model.moe.aux.z_loss), [](const MoeConfig& m) -> const Schedule& { return m.aux.z_loss; });
  z.make = [](Backend& be, const MoeConfig& m) -> std::unique_ptr<AuxLoss> {
    if (!scorer_of(m).logits) {  // load_config() refuses it; a Config built in code may not
      throw UserError("model.moe.aux.z_loss needs router logits", "use it with scorer router or large_router");
    }
    return std::make_unique<ZLoss>(be, m.aux.z_loss);
  };
  z.rules = {
      {"model.moe.aux.z_loss > 0 needs a scorer whose scores are logits (scorer.type router or "
       "large_router: it penalises router logits)",
       z_loss_needs_logits}};
  AuxLossStrategy ent = aux_loss<EntropyLoss>(
      "entropy", 4, "0.0", "confidence-entropy loss coefficient (gamma); keeps topp from using every expert",
      AM_FIELD(model.moe.aux.entropy), [](const MoeConfig& m) -> const Schedule& { return m.aux.entropy; });
  for (AuxLossStrategy* s : {&lb, &nlb, &z, &ent}) register_strategy(std::move(*s));
  return true;
}();

}  // namespace

}  // namespace am

#include "moe/moe_layer.h"

#include "config/strategy.h"
#include "moe/all_to_all_dispatcher.h"
#include "params/params.h"

namespace am {

namespace {

ExpertShard shard_of(const ModelConfig& cfg, const DistContext* dist) {
  const int n = cfg.moe.n_experts;
  if (!dist || dist->ep_size == 1 || cfg.moe.dense()) return ExpertShard{0, n};
  const int nl = n / dist->ep_size;
  return ExpertShard{dist->ep_rank * nl, nl};
}

}  // namespace

MoeLayer::MoeLayer(Backend& be, const ModelConfig& cfg, int layer, int64_t seq_len, const DistContext* dist)
    : be_(be),
      n_(cfg.moe.n_experts),
      m_(cfg.moe.dense() ? 0 : cfg.moe.selector.n_null),
      d_(cfg.d_model),
      act_norm_(scorer_of(cfg.moe).activation_norms),
      bias_rate_(cfg.moe.aux.bias_update_rate),
      prefix_("model.layers." + std::to_string(layer) + ".block_sparse_moe"),
      dist_(dist),
      parts_(make_moe_components(be, cfg, layer, seq_len, shard_of(cfg, dist))) {
  if (dist && dist->ep_size > 1 && !dense()) {
    dispatcher_ = std::make_unique<AllToAllDispatcher>(be, *dist->ep, n_);
  } else {
    dispatcher_ = std::make_unique<LocalDispatcher>(be);
  }
  for (const auto& loss : parts_.aux) needs_balance_ = needs_balance_ || loss->needs_balance_stats();
  balance_over_ranks_ = cfg.moe.aux.balance_scope == "data_parallel" && dist && dist->world_size() > 1;
  allocate_stats();
  reset_stats();
}

// mb_ = [sel (n+m+1) | prob_sums (n+m) | routed (n+1) | ent (1) | act (n+m) | aux (n_aux)],
// acc_ = [sel (n+m) | routed (n+1) | ent (1) | act (n) | aux (n_aux)]: adjacent pieces that are
// reduced or accumulated together are contiguous.
void MoeLayer::allocate_stats() {
  const int64_t nt = n_ + m_, n = n_, na = static_cast<int64_t>(parts_.aux.size());
  mb_ = TensorBuf(be_, DType::F64, {(nt + 1) + nt + (n + 1) + 1 + nt + na});
  acc_ = TensorBuf(be_, DType::F64, {nt + (n + 1) + 1 + n + na});
  const Tensor mb = mb_, acc = acc_;
  sel_ = mb.rows(0, nt + 1);
  prob_sums_ = mb.rows(nt + 1, nt);
  sel_and_probs_ = mb.rows(0, 2 * nt + 1);
  routed_ent_ = mb.rows(2 * nt + 1, n + 2);
  act_ = mb.rows(2 * nt + n + 3, nt);
  aux_vals_ = mb.rows(3 * nt + n + 3, na);
  acc_sel_ = acc.rows(0, nt);
  acc_routed_ent_ = acc.rows(nt, n + 2);
  acc_act_ = acc.rows(nt + n + 2, n);
  acc_aux_ = acc.rows(nt + 2 * n + 2, na);
  if (bias_rate_ > 0) {
    step_load_ = TensorBuf(be_, DType::F64, {n});
    be_.zero(step_load_);  // a forward without begin_step (tests) counts from zero
  }
}

void MoeLayer::register_params(ParamTable& table) {
  if (parts_.scorer) parts_.scorer->register_params(table);
  if (bias_rate_ > 0) bias_index_ = table.add_state(prefix_ + ".expert_bias", {n_}, Init::Zeros);
  parts_.experts->register_params(table);
}

void MoeLayer::bind(ParamStore& store) {
  if (parts_.scorer) parts_.scorer->bind(store);
  if (bias_index_ >= 0) bias_ = store.value(bias_index_);
  parts_.experts->bind(store);
}

void MoeLayer::allocate(int64_t n_tokens) {
  n_tokens_ = n_tokens;
  const DType dt = be_.dtype();
  if (dense()) {
    parts_.experts->allocate(n_tokens);
    dense_offsets_ = {0, n_tokens};
    dxg_ = TensorBuf(be_, dt, {n_tokens, d_});
    return;
  }
  const int kmax = parts_.selector->kmax(), nt = n_ + m_;
  const int64_t max_assign = n_tokens * kmax;
  for (TensorBuf* t : {&scores_, &probs_, &dscores_, &dprobs_}) *t = TensorBuf(be_, dt, {n_tokens, nt});
  if (bias_index_ >= 0) rank_ = TensorBuf(be_, dt, {n_tokens, nt});
  routing_.allocate(be_, n_tokens, kmax);
  // the rows sent to the experts and their outputs are saved activations: act_dtype()
  for (TensorBuf* t : {&xg_, &eo_}) *t = TensorBuf(be_, be_.act_dtype(), {max_assign, d_});
  for (TensorBuf* t : {&deo_, &dxg_}) *t = TensorBuf(be_, dt, {max_assign, d_});
  dslot_gate_ = TensorBuf(be_, dt, {n_tokens, kmax});
  parts_.scorer->allocate(n_tokens);
  const int64_t d_low = parts_.scorer->latent().data ? parts_.scorer->latent().dim(1) / n_ : 0;
  if (d_low > 0) {
    cg_ = TensorBuf(be_, be_.act_dtype(), {max_assign, d_low});
    dcg_ = TensorBuf(be_, dt, {max_assign, d_low});
  }
  parts_.experts->allocate(dispatcher_->allocate(max_assign, d_, d_low));
}

AuxInputs MoeLayer::aux_inputs() const {
  AuxInputs in;
  in.scores = scores_;
  in.probs = probs_;
  in.balance = needs_balance_ ? &balance_ : nullptr;
  in.n_tokens = n_tokens_;
  in.n_experts = n_;
  in.n_null = m_;
  in.step = step_;
  return in;
}

// The balancing losses' statistics of this micro-batch (sel_ is counted already); with
// balance_scope data_parallel summed over the data-parallel group (every rank: each runs the same
// micro-batches and layers, of the same token count), on the backend: a device all-reduce.
void MoeLayer::gather_balance_stats() {
  be_.column_sums_to(prob_sums_, probs_);
  balance_.selected = sel_;
  balance_.prob_sums = prob_sums_;
  balance_.tokens = static_cast<double>(n_tokens_);
  balance_.replicas = 1;
  if (!balance_over_ranks_) return;
  dist_->world->all_reduce_sum(sel_and_probs_);
  balance_.tokens = static_cast<double>(n_tokens_) * dist_->world_size();
  balance_.replicas = dist_->world_size();
}

double MoeLayer::forward(Tensor h, Tensor y) {
  TensorBuf aux(be_, DType::F64, {1});
  forward(h, y, aux);
  return download_as_double(be_, aux)[0];
}

void MoeLayer::forward(Tensor h, Tensor y, Tensor aux_out) {
  AM_CHECK(h.dim(0) == n_tokens_, "MoE layer allocated for {} tokens, got {}", n_tokens_, h.dim(0));
  tokens_seen_ += n_tokens_;
  micro_batches_ += 1;
  if (dense()) {
    parts_.experts->forward(h, Tensor(), dense_offsets_, y);
    if (aux_out.data) be_.sum_to(aux_out, aux_vals_);  // no aux losses: 0
    return;
  }
  Scorer& scorer = *parts_.scorer;
  scorer.forward(h, scores_, probs_);  // (N, n+m) each
  Tensor rank = scores_;
  if (bias_index_ >= 0) {  // selection sees scores + bias; the gates see the scores
    be_.copy(rank_, scores_);
    be_.add_vector_to_rows(rank_, bias_, 1.0);  // the device bias, null columns unbiased
    rank = rank_;
  }
  parts_.selector->select(rank, scores_, probs_, routing_.slot_expert, routing_.slot_gate);  // (N,kmax)
  be_.slot_counts(sel_, routing_.slot_expert, n_ + m_, n_);
  be_.axpy_f64(acc_sel_, sel_.rows(0, n_ + m_), 1.0);
  if (bias_index_ >= 0) be_.axpy_f64(step_load_, sel_.rows(0, n_), 1.0);
  dispatcher_->route(routing_, n_, rank, parts_.selector->capacity(n_tokens_));  // A, offsets: the one sync
  dispatcher_->dispatch(routing_, h, xg_);                                       // (A,d)
  Tensor latent = scorer.latent();
  if (latent.data) dispatcher_->dispatch_blocks(routing_, latent, cg_);  // (A, d_low): AoE's cache reused
  // to this rank's experts (local: the rows themselves; expert parallelism: an all-to-all)
  batch_ = dispatcher_->to_experts(routing_, xg_, latent.data ? Tensor(cg_) : Tensor(), eo_);
  parts_.experts->forward(batch_.x, batch_.latent, *batch_.offsets, batch_.out);
  dispatcher_->from_experts(batch_, eo_);  // (A,d)
  dispatcher_->combine(routing_, eo_, y);  // (N,d)

  if (needs_balance_) gather_balance_stats();
  const AuxInputs in = aux_inputs();
  for (size_t i = 0; i < parts_.aux.size(); ++i) {
    parts_.aux[i]->forward(in, aux_vals_.rows(static_cast<int64_t>(i), 1));
  }
  if (aux_out.data) be_.sum_to(aux_out, aux_vals_);
  collect_stats();
}

// The metrics' counters, accumulated on the backend (read by stats()).
void MoeLayer::collect_stats() {
  const int64_t n = n_;
  Tensor routed_counts = routed_ent_.rows(0, n + 1), ent = routed_ent_.rows(n + 1, 1);
  be_.slot_counts(routed_counts, routing_.routed, n_, n_);  // per expert = its assignments; [n] unassigned
  be_.entropy_sum_to(ent, probs_, 1.0, static_cast<double>(n_tokens_));
  be_.axpy_f64(acc_routed_ent_, routed_ent_, 1.0);
  be_.axpy_f64(acc_aux_, aux_vals_, 1.0);
  if (act_norm_) {
    be_.column_sums_to(act_, scores_);
    be_.axpy_f64(acc_act_, act_.rows(0, n), 1.0 / static_cast<double>(n_tokens_));
  }
}

const MoeLayerStats& MoeLayer::stats() const {
  const int nt = n_ + m_;
  stats_ = MoeLayerStats{};
  stats_.tokens = tokens_seen_;
  stats_.micro_batches = micro_batches_;
  stats_.expert_assignments.assign(static_cast<size_t>(n_), 0);
  stats_.selected.assign(static_cast<size_t>(nt), 0);
  stats_.act_norm_sum.assign(act_norm_ ? static_cast<size_t>(n_) : 0, 0.0);
  if (dense()) {
    stats_.expert_assignments[0] = stats_.selected[0] = tokens_seen_;
    for (const auto& loss : parts_.aux) stats_.aux_sum[loss->name()] = 0.0;
    return stats_;
  }
  const std::vector<double> acc = download_as_double(be_, acc_);  // the one read
  auto count = [&](size_t i) { return static_cast<int64_t>(acc[i]); };
  int64_t selected_true = 0, routed = 0;
  for (int i = 0; i < nt; ++i) stats_.selected[i] = count(static_cast<size_t>(i));
  for (int i = 0; i < n_; ++i) {
    stats_.expert_assignments[i] = count(static_cast<size_t>(nt + i));
    selected_true += stats_.selected[i];
    routed += stats_.expert_assignments[i];
  }
  stats_.dropped = selected_true - routed;
  stats_.unassigned = count(static_cast<size_t>(nt + n_));
  stats_.ent_conf_sum = acc[static_cast<size_t>(nt + n_ + 1)];
  for (int i = 0; i < n_ && act_norm_; ++i) stats_.act_norm_sum[i] = acc[static_cast<size_t>(nt + n_ + 2 + i)];
  for (size_t a = 0; a < parts_.aux.size(); ++a) {
    stats_.aux_sum[parts_.aux[a]->name()] = acc[static_cast<size_t>(nt + 2 * n_ + 2) + a];
  }
  return stats_;
}

void MoeLayer::backward(Tensor h, Tensor dy, Tensor dh, double aux_scale) {
  if (dense()) {
    parts_.experts->backward(h, Tensor(), dense_offsets_, dy, dxg_, Tensor());
    be_.axpy(dh, dxg_, 1.0);
    return;
  }
  Scorer& scorer = *parts_.scorer;
  Tensor latent = scorer.latent();
  dispatcher_->combine_backward(routing_, dy, eo_, deo_, dslot_gate_);  // deo (A,d), dgate (N,kmax)
  const ExpertGrads grads = dispatcher_->grads_to_experts(routing_, deo_, dxg_, latent.data ? Tensor(dcg_) : Tensor());
  AM_CHECK(batch_.offsets, "MoE backward without a forward");
  parts_.experts->backward(batch_.x, batch_.latent, *batch_.offsets, grads.dy, grads.dx, grads.dlatent);
  dispatcher_->grads_from_experts(grads, dxg_, latent.data ? Tensor(dcg_) : Tensor());
  dispatcher_->dispatch_backward(routing_, dxg_, dh);  // dh += scatter of dxg
  if (latent.data) {                                   // the selected experts' gradient reaches the cache C
    be_.zero(scorer.latent_grad());
    dispatcher_->dispatch_blocks_backward(routing_, dcg_, scorer.latent_grad());
  }
  be_.zero(dscores_);
  be_.zero(dprobs_);
  parts_.selector->backward(dslot_gate_, routing_.slot_expert, routing_.slot_gate, probs_, dscores_, dprobs_);
  const AuxInputs in = aux_inputs();
  for (auto& loss : parts_.aux) loss->backward(in, dscores_, dprobs_, aux_scale);
  scorer.backward(h, scores_, probs_, dscores_, dprobs_, dh);
}

void MoeLayer::begin_step(int64_t step) {
  step_ = step;
  if (bias_index_ >= 0) be_.zero(step_load_);
}

void MoeLayer::update_selection_bias() {
  if (bias_index_ < 0) return;
  // Every replica must move its bias the same way: the load is the whole step's, over all ranks.
  if (dist_ && dist_->world_size() > 1) dist_->world->all_reduce_sum(step_load_);
  be_.selection_bias_update(bias_, step_load_, bias_rate_);
}

void MoeLayer::reset_stats() {
  tokens_seen_ = 0;
  micro_batches_ = 0;
  be_.zero(acc_);
}

}  // namespace am

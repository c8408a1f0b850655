#include "moe/moe_layer.h"

namespace am {

namespace {

ExpertShard shard_of(const ModelConfig& cfg, const DistContext* dist) {
  const int n = cfg.moe.n_experts;
  if (!dist || dist->ep_size == 1 || cfg.moe.scorer.type == "none") return ExpertShard{0, n};
  const int nl = n / dist->ep_size;
  return ExpertShard{dist->ep_rank * nl, nl};
}

}  // namespace

MoeLayer::MoeLayer(Backend& be, const ModelConfig& cfg, int layer, int64_t seq_len, const DistContext* dist)
    : be_(be),
      n_(cfg.moe.n_experts),
      m_(cfg.moe.scorer.type == "none" ? 0 : cfg.moe.selector.n_null),
      d_(cfg.d_model),
      act_norm_(cfg.moe.scorer.type == "act_norm"),
      bias_rate_(cfg.moe.aux.bias_update_rate),
      prefix_("model.layers." + std::to_string(layer) + ".block_sparse_moe"),
      dist_(dist),
      parts_(make_moe_components(be, cfg, layer, seq_len, shard_of(cfg, dist))),
      dispatcher_(be) {
  if (dist && dist->ep_size > 1 && !dense()) exchange_ = std::make_unique<ExpertExchange>(be, *dist->ep, n_);
  for (const auto& loss : parts_.aux) needs_balance_ = needs_balance_ || loss->needs_balance_stats();
  balance_over_ranks_ = cfg.moe.aux.balance_scope == "data_parallel" && dist && dist->world_size() > 1;
  reset_stats();
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
  for (TensorBuf* t : {&xg_, &eo_, &deo_, &dxg_}) *t = TensorBuf(be_, dt, {max_assign, d_});
  dslot_gate_ = TensorBuf(be_, dt, {n_tokens, kmax});
  parts_.scorer->allocate(n_tokens);
  const int64_t d_low = parts_.scorer->latent().data ? parts_.scorer->latent().dim(1) / n_ : 0;
  if (d_low > 0) {
    cg_ = TensorBuf(be_, dt, {max_assign, d_low});
    dcg_ = TensorBuf(be_, dt, {max_assign, d_low});
  }
  if (!exchange_) {
    parts_.experts->allocate(max_assign);
    return;
  }
  // With expert parallelism this rank's experts may receive every member's rows.
  const int64_t max_local = max_assign * dist_->ep_size;
  for (TensorBuf* t : {&xl_, &eol_, &deol_, &dxl_}) *t = TensorBuf(be_, dt, {max_local, d_});
  if (d_low > 0) {
    cl_ = TensorBuf(be_, dt, {max_local, d_low});
    dcl_ = TensorBuf(be_, dt, {max_local, d_low});
  }
  parts_.experts->allocate(max_local);
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

// The balancing losses' statistics of this micro-batch; with balance_scope data_parallel summed
// over the data-parallel group (every rank: each runs the same micro-batches and layers).
void MoeLayer::gather_balance_stats() {
  balance_.selected = selected_.per_id;
  balance_.prob_sums = be_.column_sums(probs_);
  balance_.tokens = n_tokens_;
  balance_.replicas = 1;
  if (!balance_over_ranks_) return;
  balance_.selected.push_back(n_tokens_);  // one reduction for the counts and the token count
  dist_->world->all_reduce_sum(balance_.selected);
  balance_.tokens = balance_.selected.back();
  balance_.selected.pop_back();
  dist_->world->all_reduce_sum_values(balance_.prob_sums);
  balance_.replicas = dist_->world_size();
}

double MoeLayer::forward(Tensor h, Tensor y) {
  AM_CHECK(h.dim(0) == n_tokens_, "MoE layer allocated for {} tokens, got {}", n_tokens_, h.dim(0));
  if (dense()) {
    parts_.experts->forward(h, Tensor(), dense_offsets_, y);
    stats_.tokens += n_tokens_;
    stats_.micro_batches += 1;
    stats_.expert_assignments[0] += n_tokens_;
    stats_.selected[0] += n_tokens_;
    return 0.0;
  }
  Scorer& scorer = *parts_.scorer;
  scorer.forward(h, scores_, probs_);  // (N, n+m) each
  Tensor rank = scores_;
  if (bias_index_ >= 0) {  // selection sees scores + bias; the gates see the scores
    be_.copy(rank_, scores_);
    std::vector<double> b = download_as_double(be_, bias_);
    b.resize(static_cast<size_t>(n_ + m_), 0.0);
    be_.add_to_rows(rank_, b);
    rank = rank_;
  }
  parts_.selector->select(rank, scores_, probs_, routing_.slot_expert, routing_.slot_gate);  // (N,kmax)
  selected_ = be_.slot_stats(routing_.slot_expert, n_ + m_, n_);
  dispatcher_.route(routing_, n_, rank, parts_.selector->capacity(n_tokens_));  // A, offsets
  const int64_t A = routing_.n_assign;
  dispatcher_.dispatch(routing_, h, xg_);  // (A,d)
  Tensor latent = scorer.latent();
  if (latent.data) dispatcher_.dispatch_blocks(routing_, latent, cg_);  // (A, d_low): AoE's cache reused
  if (exchange_) {  // expert parallelism: rows travel to the ranks that hold their experts
    exchange_->plan(routing_.expert_offsets);
    const int64_t R = exchange_->received_rows();
    exchange_->to_experts(Tensor(xg_).rows(0, A), xl_);
    if (latent.data) exchange_->to_experts(Tensor(cg_).rows(0, A), cl_);
    parts_.experts->forward(Tensor(xl_).rows(0, R), latent.data ? Tensor(cl_).rows(0, R) : Tensor(),
                            exchange_->local_offsets(), Tensor(eol_).rows(0, R));
    exchange_->from_experts(Tensor(eol_).rows(0, R), eo_);
  } else {
    parts_.experts->forward(Tensor(xg_).rows(0, A), latent.data ? Tensor(cg_).rows(0, A) : Tensor(),
                            routing_.expert_offsets, Tensor(eo_).rows(0, A));  // (A,d)
  }
  dispatcher_.combine(routing_, eo_, y);  // (N,d)

  if (needs_balance_) gather_balance_stats();
  double total = 0;
  const AuxInputs in = aux_inputs();
  for (auto& loss : parts_.aux) {
    const double v = loss->forward(in);
    stats_.aux_sum[loss->name()] += v;
    total += v;
  }
  collect_stats();
  return total;
}

void MoeLayer::collect_stats() {
  stats_.tokens += n_tokens_;
  stats_.micro_batches += 1;
  int64_t selected_true = 0;
  for (int i = 0; i < n_ + m_; ++i) stats_.selected[i] += selected_.per_id[i];
  for (int i = 0; i < n_; ++i) {
    stats_.expert_assignments[i] += routing_.expert_offsets[i + 1] - routing_.expert_offsets[i];
    selected_true += selected_.per_id[i];
    if (bias_index_ >= 0) step_selected_[i] += selected_.per_id[i];
  }
  stats_.dropped += selected_true - routing_.n_assign;
  stats_.unassigned += be_.slot_stats(routing_.routed, n_, n_).rows_without_true;
  stats_.ent_conf_sum += be_.entropy_sum(probs_) / static_cast<double>(n_tokens_);
  if (act_norm_) {
    const std::vector<double> sums = be_.column_sums(scores_);
    for (int i = 0; i < n_; ++i) stats_.act_norm_sum[i] += sums[i] / static_cast<double>(n_tokens_);
  }
}

void MoeLayer::backward(Tensor h, Tensor dy, Tensor dh, double aux_scale) {
  if (dense()) {
    parts_.experts->backward(h, Tensor(), dense_offsets_, dy, dxg_, Tensor());
    be_.axpy(dh, dxg_, 1.0);
    return;
  }
  Scorer& scorer = *parts_.scorer;
  const int64_t A = routing_.n_assign;
  Tensor latent = scorer.latent();
  dispatcher_.combine_backward(routing_, dy, eo_, deo_, dslot_gate_);  // deo (A,d), dgate (N,kmax)
  if (exchange_) {
    const int64_t R = exchange_->received_rows();
    exchange_->to_experts(Tensor(deo_).rows(0, A), deol_);
    parts_.experts->backward(Tensor(xl_).rows(0, R), latent.data ? Tensor(cl_).rows(0, R) : Tensor(),
                             exchange_->local_offsets(), Tensor(deol_).rows(0, R), Tensor(dxl_).rows(0, R),
                             latent.data ? Tensor(dcl_).rows(0, R) : Tensor());
    exchange_->from_experts(Tensor(dxl_).rows(0, R), dxg_);
    if (latent.data) exchange_->from_experts(Tensor(dcl_).rows(0, R), dcg_);
  } else {
    parts_.experts->backward(Tensor(xg_).rows(0, A), latent.data ? Tensor(cg_).rows(0, A) : Tensor(),
                             routing_.expert_offsets, Tensor(deo_).rows(0, A), Tensor(dxg_).rows(0, A),
                             latent.data ? Tensor(dcg_).rows(0, A) : Tensor());
  }
  dispatcher_.dispatch_backward(routing_, dxg_, dh);  // dh += scatter of dxg
  if (latent.data) {  // the selected experts' gradient reaches the cache C
    be_.zero(scorer.latent_grad());
    dispatcher_.dispatch_blocks_backward(routing_, dcg_, scorer.latent_grad());
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
  std::fill(step_selected_.begin(), step_selected_.end(), 0);
}

void MoeLayer::update_selection_bias() {
  if (bias_index_ < 0) return;
  // Every replica must move its bias the same way: the load is the whole step's, over all ranks.
  if (dist_ && dist_->world_size() > 1) dist_->world->all_reduce_sum(step_selected_);
  double mean = 0;
  for (int64_t c : step_selected_) mean += static_cast<double>(c) / n_;
  std::vector<double> b = download_as_double(be_, bias_);
  for (int i = 0; i < n_; ++i) {
    const double load = static_cast<double>(step_selected_[i]);
    if (load > mean) b[i] -= bias_rate_;
    if (load < mean) b[i] += bias_rate_;
  }
  upload_from_double(be_, bias_, b);
}

void MoeLayer::reset_stats() {
  stats_ = MoeLayerStats{};
  stats_.expert_assignments.assign(static_cast<size_t>(n_), 0);
  stats_.selected.assign(static_cast<size_t>(n_ + m_), 0);
  stats_.act_norm_sum.assign(act_norm_ ? static_cast<size_t>(n_) : 0, 0.0);
  for (auto& loss : parts_.aux) stats_.aux_sum[loss->name()] = 0.0;
  if (step_selected_.empty()) step_selected_.assign(static_cast<size_t>(n_), 0);
}

}  // namespace am

#include "moe/moe_layer.h"

#include <cmath>

namespace am {

MoeLayer::MoeLayer(Backend& be, const ModelConfig& cfg, int layer)
    : be_(be), n_(cfg.moe.n_experts), d_(cfg.d_model), dispatcher_(be) {
  const MoeConfig& m = cfg.moe;
  const double out_std = cfg.init_std / std::sqrt(2.0 * cfg.n_layers);
  const std::string l = "model.layers." + std::to_string(layer);
  if (m.scorer.type == "none") {
    // Dense SwiGLU: Llama's names, so a dense checkpoint reads like a Llama one.
    const std::string p = l + ".mlp";
    experts_ = std::make_unique<SwigluExperts>(
        be, ExpertNames{p + ".gate_proj.weight", p + ".up_proj.weight", p + ".down_proj.weight"}, 1,
        d_, m.d_ffn, cfg.init_std, out_std);
  } else {
    const std::string p = l + ".block_sparse_moe";
    scorer_ = std::make_unique<RouterScorer>(be, p, n_, d_, cfg.init_std);
    selector_ = std::make_unique<TopKSelector>(be, m.selector.k);
    experts_ = std::make_unique<SwigluExperts>(
        be,
        ExpertNames{p + ".experts.{e}.w1.weight", p + ".experts.{e}.w3.weight",
                    p + ".experts.{e}.w2.weight"},
        n_, d_, m.d_ffn, cfg.init_std, out_std);
    if (m.aux.load_balance.active()) aux_.push_back(std::make_unique<LoadBalanceLoss>(be, m.aux.load_balance.at(0)));
    if (m.aux.z_loss.active()) aux_.push_back(std::make_unique<ZLoss>(be, m.aux.z_loss.at(0)));
  }
  reset_stats();
}

void MoeLayer::register_params(ParamTable& table) {
  if (scorer_) scorer_->register_params(table);
  experts_->register_params(table);
}

void MoeLayer::bind(ParamStore& store) {
  if (scorer_) scorer_->bind(store);
  experts_->bind(store);
}

void MoeLayer::allocate(int64_t n_tokens) {
  n_tokens_ = n_tokens;
  const DType dt = be_.dtype();
  if (dense()) {
    experts_->allocate(n_tokens);
    dense_offsets_ = {0, n_tokens};
    dxg_ = TensorBuf(be_, dt, {n_tokens, d_});
    return;
  }
  const int kmax = selector_->kmax();
  const int64_t max_assign = n_tokens * kmax;
  scores_ = TensorBuf(be_, dt, {n_tokens, n_});
  probs_ = TensorBuf(be_, dt, {n_tokens, n_});
  routing_.allocate(be_, n_tokens, kmax);
  xg_ = TensorBuf(be_, dt, {max_assign, d_});
  eo_ = TensorBuf(be_, dt, {max_assign, d_});
  experts_->allocate(max_assign);
  dscores_ = TensorBuf(be_, dt, {n_tokens, n_});
  dprobs_ = TensorBuf(be_, dt, {n_tokens, n_});
  dslot_gate_ = TensorBuf(be_, dt, {n_tokens, kmax});
  deo_ = TensorBuf(be_, dt, {max_assign, d_});
  dxg_ = TensorBuf(be_, dt, {max_assign, d_});
}

AuxInputs MoeLayer::aux_inputs() const {
  AuxInputs in;
  in.scores = scores_;
  in.probs = probs_;
  in.expert_offsets = &routing_.expert_offsets;
  in.n_tokens = n_tokens_;
  in.n_experts = n_;
  return in;
}

double MoeLayer::forward(Tensor h, Tensor y) {
  AM_CHECK(h.dim(0) == n_tokens_, "MoE layer allocated for {} tokens, got {}", n_tokens_, h.dim(0));
  stats_.tokens += n_tokens_;
  stats_.micro_batches += 1;
  if (dense()) {
    experts_->forward(h, dense_offsets_, y);
    stats_.expert_assignments[0] += n_tokens_;
    return 0.0;
  }
  scorer_->forward(h, scores_, probs_);                                    // (N,n) each
  selector_->select(scores_, probs_, routing_.slot_expert, routing_.slot_gate);  // (N,kmax)
  dispatcher_.route(routing_, n_);                                         // A, offsets
  dispatcher_.dispatch(routing_, h, xg_);                                  // (A,d)
  experts_->forward(Tensor(xg_).rows(0, routing_.n_assign), routing_.expert_offsets,
                    Tensor(eo_).rows(0, routing_.n_assign));               // (A,d)
  dispatcher_.combine(routing_, eo_, y);                                   // (N,d)

  for (int e = 0; e < n_; ++e) {
    stats_.expert_assignments[e] += routing_.expert_offsets[e + 1] - routing_.expert_offsets[e];
  }
  double total = 0;
  const AuxInputs in = aux_inputs();
  for (auto& loss : aux_) {
    const double v = loss->forward(in);
    stats_.aux_sum[loss->name()] += v;
    total += v;
  }
  return total;
}

void MoeLayer::backward(Tensor h, Tensor dy, Tensor dh, double aux_scale) {
  if (dense()) {
    experts_->backward(h, dense_offsets_, dy, dxg_);
    be_.axpy(dh, dxg_, 1.0);
    return;
  }
  const int64_t A = routing_.n_assign;
  dispatcher_.combine_backward(routing_, dy, eo_, deo_, dslot_gate_);     // deo (A,d), dgate
  experts_->backward(Tensor(xg_).rows(0, A), routing_.expert_offsets, Tensor(deo_).rows(0, A),
                     Tensor(dxg_).rows(0, A));                             // dxg (A,d)
  dispatcher_.dispatch_backward(routing_, dxg_, dh);                       // dh += scatter

  be_.zero(dscores_);
  be_.zero(dprobs_);
  selector_->backward(dslot_gate_, routing_.slot_expert, routing_.slot_gate, dscores_, dprobs_);
  const AuxInputs in = aux_inputs();
  for (auto& loss : aux_) loss->backward(in, dscores_, dprobs_, aux_scale);
  scorer_->backward(h, probs_, dscores_, dprobs_, dh);
}

void MoeLayer::reset_stats() {
  stats_ = MoeLayerStats{};
  stats_.expert_assignments.assign(static_cast<size_t>(n_), 0);
  for (auto& loss : aux_) stats_.aux_sum[loss->name()] = 0.0;
}

}  // namespace am

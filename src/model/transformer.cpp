#include "model/transformer.h"

#include "model/transformer_layer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace am {

ParamTable Transformer::declare(Backend& be, const ModelConfig& cfg, int T, const DistContext* dist,
                                std::vector<std::unique_ptr<Layer>>& layers, Indices& ix) {
  const int64_t d = cfg.d_model, V = cfg.vocab_size, L = cfg.n_layers;
  const AttnShape a{0, T, cfg.n_heads, cfg.kv_heads(), cfg.head_dim()};
  const double std = cfg.init_std, out_std = cfg.init_std / std::sqrt(2.0 * L);
  ParamTable table;
  ix.emb = table.add("model.embed_tokens.weight", {V, d}, Init::Normal, std);
  for (int l = 0; l < L; ++l) {
    auto layer = std::make_unique<Layer>();
    const std::string p = "model.layers." + std::to_string(l);
    layer->ln1 = table.add(p + ".input_layernorm.weight", {d}, Init::Ones);
    layer->wqkv = table.add(p + ".self_attn.q_proj.weight", {a.q_dim(), d}, Init::Normal, std);
    table.add(p + ".self_attn.k_proj.weight", {a.kv_dim(), d}, Init::Normal, std);
    table.add(p + ".self_attn.v_proj.weight", {a.kv_dim(), d}, Init::Normal, std);
    layer->wo = table.add(p + ".self_attn.o_proj.weight", {d, a.q_dim()}, Init::Normal, out_std);
    layer->ln2 = table.add(p + ".post_attention_layernorm.weight", {d}, Init::Ones);
    layer->moe = std::make_unique<MoeLayer>(be, cfg, l, T, dist);
    layer->moe->register_params(table);
    layer->last = table.size() - 1;
    layers.push_back(std::move(layer));
  }
  ix.norm_f = table.add("model.norm.weight", {d}, Init::Ones);
  ix.lm_head = cfg.tie_embeddings ? ix.emb : table.add("lm_head.weight", {V, d}, Init::Normal, std);
  return table;
}

ParamTable Transformer::full_table(Backend& be, const ModelConfig& cfg) {
  std::vector<std::unique_ptr<Layer>> layers;
  Indices ix;
  return declare(be, cfg, 1, nullptr, layers, ix);
}

Transformer::Transformer(Backend& be, const ModelConfig& cfg, int B, int T, const DistContext* dist)
    : be_(be), cfg_(cfg), B_(B), T_(T), N_(static_cast<int64_t>(B) * T) {
  const int64_t d = cfg.d_model, V = cfg.vocab_size, L = cfg.n_layers;
  attn_ = AttnShape{B, T, cfg.n_heads, cfg.kv_heads(), cfg.head_dim()};
  Indices ix;
  store_ = std::make_unique<ParamStore>(be, declare(be, cfg, T, dist, layers_, ix));
  emb_ = ix.emb;
  norm_f_ = ix.norm_f;
  lm_head_ = ix.lm_head;

  // ---- activations ----
  // Saved activations in act_dtype() (bf16 under run.precision: bf16); the residual stream, the
  // norms' rstd, attention's lse, the losses and the backward's scratch in dtype() (fp32):
  // docs/training.md, "bf16 activations".
  const DType dt = be.dtype(), at = be.act_dtype();
  tokens_ = TensorBuf(be, DType::I32, {N_});
  targets_ = TensorBuf(be, DType::I32, {N_});
  for (int l = 0; l <= L; ++l) res_.emplace_back(be, dt, std::vector<int64_t>{N_, d});
  for (auto& layer : layers_) {
    layer->moe->bind(*store_);
    layer->moe->allocate(N_);
    layer->ln1_out = TensorBuf(be, at, {N_, d});
    layer->rstd1 = TensorBuf(be, dt, {N_});
    layer->qkv = TensorBuf(be, at, {N_, attn_.qkv_dim()});
    layer->att = TensorBuf(be, at, {N_, attn_.q_dim()});
    layer->lse = TensorBuf(be, dt, {B_, attn_.n_heads, T_});
    layer->res_mid = TensorBuf(be, dt, {N_, d});
    layer->ln2_out = TensorBuf(be, at, {N_, d});
    layer->rstd2 = TensorBuf(be, dt, {N_});
    layer->moe_out = TensorBuf(be, dt, {N_, d});
  }
  lnf_ = TensorBuf(be, at, {N_, d});
  rstdf_ = TensorBuf(be, dt, {N_});
  logits_ = TensorBuf(be, at, {N_, V});
  // [N per-token losses | the update flag | L per-layer aux-loss sums]: one download (forward)
  losses_ = TensorBuf(be, dt, {N_ + 1 + L});
  dres_ = TensorBuf(be, dt, {N_, d});
  dln_ = TensorBuf(be, dt, {N_, d});
  dqkv_ = TensorBuf(be, dt, {N_, attn_.qkv_dim()});
  datt_ = TensorBuf(be, dt, {N_, attn_.q_dim()});
}

// The backend's bf16 weight copy (if any) points into this model's parameters: drop it with them.
Transformer::~Transformer() { be_.refresh_weight_copy(Tensor()); }

std::vector<MoeLayer*> Transformer::moe_layers() {
  std::vector<MoeLayer*> out;
  for (auto& l : layers_) out.push_back(l->moe.get());
  return out;
}

// Layer l's auxiliary-loss sum: element N + 1 + l of losses_ (written by MoeLayer::forward).
Tensor Transformer::aux_slot(size_t l) const {
  return Tensor(
      static_cast<char*>(losses_.t().data) + (N_ + 1 + static_cast<int64_t>(l)) * dtype_size(losses_.t().dtype),
      losses_.t().dtype, {1});
}

void Transformer::begin_step(int64_t step) {
  staged_ = 0;  // the step before ended with its read-back (train_step)
  for (auto& l : layers_) l->moe->begin_step(step);
}

void Transformer::end_step() {
  for (auto& l : layers_) l->moe->update_selection_bias();
}

// The ids are checked here, on the host, before they reach the device: the CUDA ops read nothing
// back (their kernels only guard memory), and the CPU ops make the same checks again.
void Transformer::check_ids(const int32_t* tokens, const int32_t* targets) const {
  const int64_t V = cfg_.vocab_size;
  for (int64_t i = 0; i < N_; ++i) {
    AM_CHECK(tokens[i] >= 0 && tokens[i] < V, "token {} at position {} is outside [0, {})", tokens[i], i, V);
  }
  for (int64_t i = 0; i < N_; ++i) {
    AM_CHECK(targets[i] < V, "target {} of row {} is >= the vocabulary size {}", targets[i], i, V);
  }
}

// Copies the ids into the next pinned staging slot and uploads them from there without waiting.
// A slot is reused only after a synchronising call: slots count up from 0 after begin_step() (the
// step before ended with its read-back) and after forward()'s download.
void Transformer::stage_ids(const int32_t* tokens, const int32_t* targets) {
  const size_t n = static_cast<size_t>(N_);
  if (staged_ == staging_.size()) staging_.push_back(be_.alloc_host(2 * n * sizeof(int32_t)));
  auto* slot = static_cast<int32_t*>(staging_[staged_++].get());
  std::copy(tokens, tokens + n, slot);
  std::copy(targets, targets + n, slot + n);
  be_.upload_async(tokens_, slot);
  be_.upload_async(targets_, slot + n);
}

void Transformer::run_forward(const int32_t* tokens, const int32_t* targets, double grad_scale, int64_t& n_targets) {
  ParamStore& P = *store_;
  const double eps = cfg_.norm_eps;
  check_ids(tokens, targets);
  grad_scale_ = grad_scale;
  be_.refresh_weight_copy(P.all_values());  // bf16 runs: round the fp32 master weights once per pass
  stage_ids(tokens, targets);
  n_targets = 0;
  for (int64_t i = 0; i < N_; ++i) n_targets += targets[i] >= 0;

  // Each residual add is fused with the RMSNorm that reads its result (rmsnorm_residual_forward:
  // add + rmsnorm_forward by default, one kernel on CUDA): the next layer's input norm, or the
  // final norm after the last layer.
  be_.embedding_forward(res_[0], tokens_, P.value(emb_));  // (N,d)
  be_.rmsnorm_forward(layers_[0]->ln1_out, layers_[0]->rstd1, res_[0], P.value(layers_[0]->ln1), eps);
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& y = *layers_[l];
    const int64_t qkv_dim = attn_.qkv_dim(), d = cfg_.d_model;
    Tensor wqkv(P.value(y.wqkv).data, be_.dtype(), {qkv_dim, d});
    // attention sub-block (y.ln1_out holds RMSNorm(res_[l]) * ln1)
    be_.matmul(y.qkv, y.ln1_out, false, wqkv, true, 1.0, 0.0);  // (N, qkv_dim)
    be_.rope_forward(Tensor(y.qkv).reshape({B_, T_, qkv_dim}), attn_, cfg_.rope_theta);
    be_.attention_forward(Tensor(y.att).reshape({B_, T_, attn_.q_dim()}), y.lse,
                          Tensor(y.qkv).reshape({B_, T_, qkv_dim}), attn_);
    be_.matmul(y.res_mid, y.att, false, P.value(y.wo), true, 1.0, 0.0);  // (N,d)
    // res_mid = att Wo^T + res_[l]; MoE sub-block on RMSNorm(res_mid) * ln2
    be_.rmsnorm_residual_forward(y.res_mid, y.ln2_out, y.rstd2, y.res_mid, res_[l], P.value(y.ln2), eps);
    y.moe->forward(y.ln2_out, y.moe_out, aux_slot(l));  // aux sum on the device, read with the losses
    // res_[l + 1] = res_mid + MoE, normed by the next layer's ln1 (or the final norm)
    const bool last = l + 1 == layers_.size();
    const Tensor norm_out = last ? lnf_.t() : layers_[l + 1]->ln1_out.t();
    const Tensor norm_rstd = last ? rstdf_.t() : layers_[l + 1]->rstd1.t();
    be_.rmsnorm_residual_forward(res_[l + 1], norm_out, norm_rstd, y.res_mid, y.moe_out,
                                 P.value(last ? norm_f_ : layers_[l + 1]->ln1), eps);
  }
  be_.matmul(logits_, lnf_, false, P.value(lm_head_), true, 1.0, 0.0);  // (N,V)

  const double denom = static_cast<double>(std::max<int64_t>(n_targets, 1));
  if (grad_scale > 0) {
    be_.cross_entropy_forward_backward(token_losses(), logits_, targets_, grad_scale / denom);
  } else {
    be_.cross_entropy_forward(token_losses(), logits_, targets_);
  }
}

Tensor Transformer::token_losses() const { return Tensor(losses_.t().data, losses_.t().dtype, {N_}); }

LossParts Transformer::forward(const int32_t* tokens, const int32_t* targets, double grad_scale,
                               std::vector<double>* per_token) {
  LossParts out;
  run_forward(tokens, targets, grad_scale, out.targets);
  const Tensor losses_n = token_losses();
  // The update flag travels in the same download as the losses (no extra host synchronisation).
  be_.copy_update_flag(Tensor(static_cast<char*>(losses_.t().data) + losses_n.nbytes(), losses_n.dtype, {1}));
  std::vector<double> losses = download_as_double(be_, losses_);
  staged_ = 0;  // the download waited for the uploads
  for (size_t l = 0; l < layers_.size(); ++l) out.aux += losses[static_cast<size_t>(N_ + 1) + l];
  losses.resize(static_cast<size_t>(N_ + 1));
  out.update_flag = static_cast<int>(losses.back());
  losses.pop_back();
  if (per_token) *per_token = losses;
  const double denom = static_cast<double>(std::max<int64_t>(out.targets, 1));
  out.ce = std::accumulate(losses.begin(), losses.end(), 0.0) / denom;
  return out;
}

void Transformer::forward_accumulate(const int32_t* tokens, const int32_t* targets, double grad_scale, int divisor,
                                     Tensor ce_acc, Tensor aux_acc) {
  AM_CHECK(grad_scale > 0 && divisor >= 1, "forward_accumulate: grad_scale {} divisor {}", grad_scale, divisor);
  int64_t n_targets = 0;
  run_forward(tokens, targets, grad_scale, n_targets);
  be_.loss_sum_accumulate(ce_acc, token_losses(), static_cast<double>(std::max<int64_t>(n_targets, 1)), divisor);
  // The layers' aux sums (aux_slot), in layer order, / divisor: forward()'s aux / divisor.
  const Tensor aux_slots(static_cast<char*>(aux_slot(0).data), losses_.t().dtype,
                         {static_cast<int64_t>(layers_.size())});
  be_.loss_sum_accumulate(aux_acc, aux_slots, 1.0, divisor);
}

void Transformer::backward(const GradsReady& grads_ready) {
  AM_CHECK(grad_scale_ > 0, "backward() without a training forward()");
  ParamStore& P = *store_;
  const int64_t qkv_dim = attn_.qkv_dim(), d = cfg_.d_model;

  // LM head and final norm. logits_ holds dL/dlogits (N,V).
  be_.matmul(dln_, logits_, false, P.value(lm_head_), false, 1.0, 0.0);  // (N,d)
  be_.matmul(P.grad(lm_head_), logits_, true, lnf_, false, 1.0, 1.0);    // (V,d)
  be_.zero(dres_);
  be_.rmsnorm_backward(dres_, P.grad(norm_f_), dln_, res_.back(), P.value(norm_f_), rstdf_);

  for (size_t li = layers_.size(); li-- > 0;) {
    Layer& y = *layers_[li];
    // MoE sub-block: res_out = res_mid + MoE(RMSNorm(res_mid)); dres flows through unchanged.
    be_.zero(dln_);
    y.moe->backward(y.ln2_out, dres_, dln_, grad_scale_);
    be_.rmsnorm_backward(dres_, P.grad(y.ln2), dln_, y.res_mid, P.value(y.ln2), y.rstd2);
    // attention sub-block: res_mid = res_in + att Wo^T
    be_.matmul(datt_, dres_, false, P.value(y.wo), false, 1.0, 0.0);  // (N, H*hd)
    be_.matmul(P.grad(y.wo), dres_, true, y.att, false, 1.0, 1.0);    // (d, H*hd)
    Tensor dqkv3 = Tensor(dqkv_).reshape({B_, T_, qkv_dim});
    be_.attention_backward(dqkv3, Tensor(datt_).reshape({B_, T_, attn_.q_dim()}),
                           Tensor(y.qkv).reshape({B_, T_, qkv_dim}), Tensor(y.att).reshape({B_, T_, attn_.q_dim()}),
                           y.lse, attn_);
    be_.rope_backward(dqkv3, attn_, cfg_.rope_theta);
    Tensor wqkv(P.value(y.wqkv).data, be_.dtype(), {qkv_dim, d});
    Tensor dwqkv(P.grad(y.wqkv).data, be_.dtype(), {qkv_dim, d});
    be_.matmul(dln_, dqkv_, false, wqkv, false, 1.0, 0.0);       // (N,d)
    be_.matmul(dwqkv, dqkv_, true, y.ln1_out, false, 1.0, 1.0);  // (qkv_dim, d)
    be_.rmsnorm_backward(dres_, P.grad(y.ln1), dln_, res_[li], P.value(y.ln1), y.rstd1);
    if (grads_ready) grads_ready(y.ln1, y.last);
  }
  be_.embedding_backward(P.grad(emb_), tokens_, dres_);
}

}  // namespace am

#include "model/decode.h"

#include "config/strategy.h"
#include "core/error.h"
#include "model/transformer_layer.h"
#include "params/params.h"

#include <spdlog/spdlog.h>

namespace am {

Decoder::Decoder(Transformer& model, int max_len) : m_(model), max_len_(max_len) {
  AM_CHECK(model.B_ == 1 && model.T_ == 1, "Decoder needs a model built for B = 1, T = 1, got {} x {}", model.B_,
           model.T_);
  AM_CHECK(max_len >= 1 && max_len <= model.cfg_.max_seq_len, "cache of {} positions, max_seq_len {}", max_len,
           model.cfg_.max_seq_len);
  Backend& be = model.be_;
  const AttnShape& a = model.attn_;
  for (size_t l = 0; l < model.layers_.size(); ++l) {
    k_.emplace_back(be, be.act_dtype(), std::vector<int64_t>{max_len, a.kv_dim()});
    v_.emplace_back(be, be.act_dtype(), std::vector<int64_t>{max_len, a.kv_dim()});
  }
}

void Decoder::attention(size_t l) {
  Backend& be = m_.be_;
  Transformer::Layer& y = *m_.layers_[l];
  const AttnShape& a = m_.attn_;
  AttnShape s = a;
  s.B = 1;
  s.T = 1;
  be.rope_forward(y.qkv, s, m_.cfg_.rope_theta, pos_);  // (1, qkv_dim): q and k at position pos_
  // The new row's k and v parts (contiguous in the one row) join the cache at row pos_.
  const Tensor qkv = y.qkv.t();
  const size_t es = dtype_size(qkv.dtype);
  char* row = static_cast<char*>(qkv.data);
  const Tensor q(row, qkv.dtype, {1, a.q_dim()});
  be.copy(k_[l].t().rows(pos_, 1), Tensor(row + es * size_t(a.q_dim()), qkv.dtype, {1, a.kv_dim()}));
  be.copy(v_[l].t().rows(pos_, 1), Tensor(row + es * size_t(a.q_dim() + a.kv_dim()), qkv.dtype, {1, a.kv_dim()}));
  be.attention_decode(y.att, q, k_[l].t(), v_[l].t(), pos_ + 1, s);
}

std::vector<double> Decoder::step(int32_t token) {
  Transformer& m = m_;
  Backend& be = m.be_;
  ParamStore& P = *m.store_;
  const double eps = m.cfg_.norm_eps;
  AM_CHECK(token >= 0 && token < m.cfg_.vocab_size, "token {} outside [0, {})", token, m.cfg_.vocab_size);
  AM_CHECK(pos_ < max_len_, "the KV cache holds {} positions", max_len_);
  if (pos_ == 0) be.refresh_weight_copy(P.all_values());  // bf16: round the master weights once
  be.upload(m.tokens_, &token);
  be.embedding_forward(m.res_[0], m.tokens_, P.value(m.emb_));
  be.rmsnorm_forward(m.layers_[0]->ln1_out, m.layers_[0]->rstd1, m.res_[0], P.value(m.layers_[0]->ln1), eps);
  for (size_t l = 0; l < m.layers_.size(); ++l) {  // as Transformer::run_forward, on one row
    Transformer::Layer& y = *m.layers_[l];
    const int64_t qkv_dim = m.attn_.qkv_dim(), d = m.cfg_.d_model;
    be.matmul(y.qkv, y.ln1_out, false, Tensor(P.value(y.wqkv).data, be.dtype(), {qkv_dim, d}), true, 1.0, 0.0);
    attention(l);
    be.matmul(y.res_mid, y.att, false, P.value(y.wo), true, 1.0, 0.0);
    be.rmsnorm_residual_forward(y.res_mid, y.ln2_out, y.rstd2, y.res_mid, m.res_[l], P.value(y.ln2), eps);
    y.moe->forward(y.ln2_out, y.moe_out, m.aux_slot(l));
    const bool last = l + 1 == m.layers_.size();
    const Tensor norm_out = last ? m.lnf_.t() : m.layers_[l + 1]->ln1_out.t();
    const Tensor norm_rstd = last ? m.rstdf_.t() : m.layers_[l + 1]->rstd1.t();
    be.rmsnorm_residual_forward(m.res_[l + 1], norm_out, norm_rstd, y.res_mid, y.moe_out,
                                P.value(last ? m.norm_f_ : m.layers_[l + 1]->ln1), eps);
  }
  be.matmul(m.logits_, m.lnf_, false, P.value(m.lm_head_), true, 1.0, 0.0);  // (1,V)
  ++pos_;
  return download_as_double(be, m.logits_);
}

void check_decode_supported(const ModelConfig& model) {
  if (model.moe.dense()) return;
  const SelectorInfo& selector = selector_of(model.moe);
  if (selector.causal && selector.drops_tokens(model.moe)) {
    spdlog::warn(
        "model.moe.selector.capacity_factor is {}: decoding routes one token at a time, so no token is "
        "dropped (docs/sampling.md)",
        model.moe.selector.capacity_factor);
  }
  if (selector.causal) return;
  throw UserError(fmt::format("generation needs a causal model, but model.moe.selector.type is {} "
                              "(group: {}): a token's experts depend on the later tokens of its group",
                              selector.name, model.moe.selector.group),
                  "sample from a token-choice model (topk or topp); docs/sampling.md");
}

}  // namespace am

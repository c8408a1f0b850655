#include "model/decode.h"

#include "core/error.h"
#include "params/params.h"
#include "model/transformer_layer.h"

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
    raw_.emplace_back(be, be.act_dtype(), std::vector<int64_t>{max_len, a.qkv_dim()});
    rot_.emplace_back(be, be.act_dtype(), std::vector<int64_t>{max_len, a.qkv_dim()});
  }
  att_ = TensorBuf(be, be.act_dtype(), {max_len, a.q_dim()});
  lse_ = TensorBuf(be, be.dtype(), {a.n_heads * max_len});
}

void Decoder::attention(size_t l) {
  Backend& be = m_.be_;
  Transformer::Layer& y = *m_.layers_[l];
  const int64_t n = pos_ + 1, qkv_dim = m_.attn_.qkv_dim(), q_dim = m_.attn_.q_dim();
  AttnShape s = m_.attn_;
  s.B = 1;
  s.T = n;
  be.copy(raw_[l].t().rows(pos_, 1), y.qkv);  // the new position's projections, before RoPE
  const Tensor rot = rot_[l].t().rows(0, n).reshape({1, n, qkv_dim});
  be.copy(rot, raw_[l].t().rows(0, n).reshape({1, n, qkv_dim}));
  be.rope_forward(rot, s, m_.cfg_.rope_theta);
  const Tensor att = att_.t().rows(0, n);
  be.attention_forward(att.reshape({1, n, q_dim}), Tensor(lse_.t().data, lse_.t().dtype, {1, s.n_heads, n}), rot, s);
  be.copy(y.att, att.rows(pos_, 1));
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
  if (model.moe.scorer.type == "none") return;
  if (model.moe.selector.type == "topk" && model.moe.selector.capacity_factor > 0) {
    spdlog::warn("model.moe.selector.capacity_factor is {}: decoding routes one token at a time, so no token is "
                 "dropped (docs/sampling.md)",
                 model.moe.selector.capacity_factor);
  }
  if (model.moe.selector.type != "expert_choice") return;
  throw UserError(fmt::format("generation needs a causal model, but model.moe.selector.type is expert_choice "
                              "(group: {}): a token's experts depend on the later tokens of its group",
                              model.moe.selector.group),
                  "sample from a token-choice model (topk or topp); docs/sampling.md");
}

}  // namespace am

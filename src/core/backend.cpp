// The op contract of core/backend.h, first half: each op checks its arguments here, once for every
// backend, then calls its `_impl`. Memory, dense math, embedding, RMSNorm (and the composite
// residual + RMSNorm), RoPE, attention, SiLU / SwiGLU, cross-entropy (and the composite fused
// classifier), the row-softmax helpers, the optimizer and the bf16 weight copy. Selection,
// activation norms, entropy and routing: backend_moe.cpp.
#include "core/backend.h"

#include "core/op_checks.h"

namespace am {

using namespace op_checks;

Precision precision_from_name(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "fp64") return Precision::FP64;
  if (name == "bf16") return Precision::BF16;
  throw UserError(fmt::format("unknown precision '{}'", name), "valid precisions: fp32, bf16, fp64 (CPU only)");
}

DType precision_dtype(Precision p) { return p == Precision::FP64 ? DType::F64 : DType::F32; }

// ---- memory ----

void Backend::copy(Tensor dst, Tensor src) {
  AM_CHECK(dst.dtype == src.dtype && dst.numel() == src.numel(),
           "copy: dst {} {} and src {} {} differ in dtype or element count", dtype_name(dst.dtype), dst.shape_str(),
           dtype_name(src.dtype), src.shape_str());
  copy_impl(dst, src);
}

// ---- dense math ----

void Backend::matmul(Tensor c, Tensor a, bool trans_a, Tensor b, bool trans_b, double alpha, double beta) {
  AM_CHECK(a.ndim == 2 && b.ndim == 2 && c.ndim == 2, "matmul: a {}, b {}, c {} must all be 2-D", a.shape_str(),
           b.shape_str(), c.shape_str());
  const int64_t M = trans_a ? a.dims[1] : a.dims[0], K = trans_a ? a.dims[0] : a.dims[1];
  const int64_t Kb = trans_b ? b.dims[1] : b.dims[0], N = trans_b ? b.dims[0] : b.dims[1];
  AM_CHECK(K == Kb && c.dims[0] == M && c.dims[1] == N,
           "matmul: c {} = op(a {}{}) op(b {}{}) does not fit: ({}, {}) x ({}, {})", c.shape_str(), a.shape_str(),
           trans_a ? "^T" : "", b.shape_str(), trans_b ? "^T" : "", M, K, Kb, N);
  check_float("matmul", "a", a);
  check_float("matmul", "b", b);
  check_float("matmul", "c", c);
  with_f32("matmul", {beta == 0 ? wr(&c) : rw(&c), &a, &b},
           [&] { matmul_impl(c, a, trans_a, b, trans_b, alpha, beta); });
}

void Backend::add(Tensor out, Tensor a, Tensor b) {
  const int64_t n = out.numel();
  float_numel(*this, "add", "out", out, n);
  float_numel(*this, "add", "a", a, n);
  float_numel(*this, "add", "b", b, n);
  with_f32("add", {wr(&out), &a, &b}, [&] { add_impl(out, a, b); });
}

void Backend::axpy(Tensor y, Tensor x, double alpha) {
  const int64_t n = y.numel();
  float_numel(*this, "axpy", "y", y, n);
  float_numel(*this, "axpy", "x", x, n);
  with_f32("axpy", {rw(&y), &x}, [&] { axpy_impl(y, x, alpha); });
}

void Backend::scale(Tensor x, double s) {
  check_float("scale", "x", x);
  with_f32("scale", {rw(&x)}, [&] { scale_impl(x, s); });
}

double Backend::sum_squares(Tensor x) {
  check_float("sum_squares", "x", x);
  return with_f32("sum_squares", {&x}, [&] { return sum_squares_impl(x); });
}

// ---- embedding ----

void Backend::embedding_forward(Tensor out, Tensor tokens, Tensor table) {
  const int64_t N = tokens.numel(), V = row_count(table), d = last_dim(table);
  index_numel("embedding_forward", "tokens", tokens, N);
  float_matrix(*this, "embedding_forward", "table", table, V, d);
  float_matrix(*this, "embedding_forward", "out", out, N, d);
  with_f32("embedding_forward", {wr(&out), &tokens, &table}, [&] { embedding_forward_impl(out, tokens, table); });
}

void Backend::embedding_backward(Tensor dtable, Tensor tokens, Tensor dout) {
  const int64_t N = tokens.numel(), V = row_count(dtable), d = last_dim(dtable);
  index_numel("embedding_backward", "tokens", tokens, N);
  float_matrix(*this, "embedding_backward", "dtable", dtable, V, d);
  float_matrix(*this, "embedding_backward", "dout", dout, N, d);
  with_f32("embedding_backward", {rw(&dtable), &tokens, &dout}, [&] { embedding_backward_impl(dtable, tokens, dout); });
}

// ---- RMSNorm ----

void Backend::rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, double eps) {
  const int64_t N = row_count(x), d = last_dim(x);
  float_matrix(*this, "rmsnorm_forward", "x", x, N, d);
  float_matrix(*this, "rmsnorm_forward", "out", out, N, d);
  float_numel(*this, "rmsnorm_forward", "w", w, d);
  float_numel(*this, "rmsnorm_forward", "rstd", rstd, N);
  with_f32("rmsnorm_forward", {wr(&out), wr(&rstd), &x, &w}, [&] { rmsnorm_forward_impl(out, rstd, x, w, eps); });
}

void Backend::rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd) {
  const int64_t N = row_count(x), d = last_dim(x);
  float_matrix(*this, "rmsnorm_backward", "x", x, N, d);
  float_matrix(*this, "rmsnorm_backward", "dx", dx, N, d);
  float_matrix(*this, "rmsnorm_backward", "dout", dout, N, d);
  float_numel(*this, "rmsnorm_backward", "w", w, d);
  float_numel(*this, "rmsnorm_backward", "dw", dw, d);
  float_numel(*this, "rmsnorm_backward", "rstd", rstd, N);
  with_f32("rmsnorm_backward", {rw(&dx), rw(&dw), &dout, &x, &w, &rstd},
           [&] { rmsnorm_backward_impl(dx, dw, dout, x, w, rstd); });
}

void Backend::rmsnorm_residual_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor w,
                                       double eps) {
  const char* op = "rmsnorm_residual_forward";
  const int64_t N = row_count(a), d = last_dim(a);
  float_matrix(*this, op, "a", a, N, d);
  float_matrix(*this, op, "b", b, N, d);
  float_matrix(*this, op, "res_out", res_out, N, d);
  float_matrix(*this, op, "out", out, N, d);
  float_numel(*this, op, "w", w, d);
  float_numel(*this, op, "rstd", rstd, N);
  with_f32("rmsnorm_residual_forward", {wr(&res_out), wr(&out), wr(&rstd), &a, &b, &w},
           [&] { rmsnorm_residual_forward_impl(res_out, out, rstd, a, b, w, eps); });
}

// The composite's default: the two simple ops, so the same bits as calling them.
void Backend::rmsnorm_residual_forward_impl(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor w,
                                            double eps) {
  add_impl(res_out, a, b);
  rmsnorm_forward_impl(out, rstd, res_out, w, eps);
}

// ---- RoPE and attention ----

namespace {

void check_rope(const char* op, const AttnShape& s) {
  AM_CHECK(s.head_dim % 2 == 0, "{}: RoPE needs an even head_dim, got {}", op, s.head_dim);
}

void check_attn_shape(const char* op, const AttnShape& s) {
  AM_CHECK(s.B >= 0 && s.T >= 0 && s.head_dim > 0 && s.n_heads > 0 && s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0,
           "{}: bad attention shape B={} T={} H={} Hkv={} hd={}", op, s.B, s.T, s.n_heads, s.n_kv_heads, s.head_dim);
}

}  // namespace

void Backend::rope_forward(Tensor qkv, const AttnShape& s, double theta, int64_t start) {
  float_matrix(*this, "rope_forward", "qkv", qkv, s.B * s.T, s.qkv_dim());
  check_rope("rope_forward", s);
  AM_CHECK(start >= 0, "rope_forward: start position {} is negative", start);
  with_f32("rope_forward", {rw(&qkv)}, [&] { rope_forward_impl(qkv, s, theta, start); });
}

void Backend::rope_backward(Tensor dqkv, const AttnShape& s, double theta) {
  float_matrix(*this, "rope_backward", "dqkv", dqkv, s.B * s.T, s.qkv_dim());
  check_rope("rope_backward", s);
  with_f32("rope_backward", {rw(&dqkv)}, [&] { rope_backward_impl(dqkv, s, theta); });
}

void Backend::attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) {
  check_attn_shape("attention_forward", s);
  float_matrix(*this, "attention_forward", "qkv", qkv, s.B * s.T, s.qkv_dim());
  float_matrix(*this, "attention_forward", "out", out, s.B * s.T, s.q_dim());
  float_numel(*this, "attention_forward", "lse", lse, s.B * s.n_heads * s.T);
  with_f32("attention_forward", {wr(&out), wr(&lse), &qkv}, [&] { attention_forward_impl(out, lse, qkv, s); });
}

void Backend::attention_backward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, const AttnShape& s) {
  check_attn_shape("attention_backward", s);
  float_matrix(*this, "attention_backward", "dqkv", dqkv, s.B * s.T, s.qkv_dim());
  float_matrix(*this, "attention_backward", "qkv", qkv, s.B * s.T, s.qkv_dim());
  float_matrix(*this, "attention_backward", "dout", dout, s.B * s.T, s.q_dim());
  float_matrix(*this, "attention_backward", "out", out, s.B * s.T, s.q_dim());
  float_numel(*this, "attention_backward", "lse", lse, s.B * s.n_heads * s.T);
  with_f32("attention_backward", {wr(&dqkv), &dout, &qkv, &out, &lse},
           [&] { attention_backward_impl(dqkv, dout, qkv, out, lse, s); });
}

void Backend::attention_decode(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n, const AttnShape& s) {
  check_attn_shape("attention_decode", s);
  float_matrix(*this, "attention_decode", "out", out, 1, s.q_dim());
  float_matrix(*this, "attention_decode", "q", q, 1, s.q_dim());
  check_float("attention_decode", "k_cache", k_cache);
  check_float("attention_decode", "v_cache", v_cache);
  const int64_t L = row_count(k_cache);
  check_rows_cols("attention_decode", "k_cache", k_cache, L, s.kv_dim());
  check_rows_cols("attention_decode", "v_cache", v_cache, L, s.kv_dim());
  AM_CHECK(n >= 1 && n <= L, "attention_decode: {} positions, the caches hold {} (k_cache {}, v_cache {})", n, L,
           k_cache.shape_str(), v_cache.shape_str());
  // Only the n rows the op reads are widened under bf16 storage.
  Tensor k = k_cache.reshape({L, s.kv_dim()}).rows(0, n), v = v_cache.reshape({L, s.kv_dim()}).rows(0, n);
  with_f32("attention_decode", {wr(&out), &q, &k, &v}, [&] { attention_decode_impl(out, q, k, v, n, s); });
}

// ---- SiLU and SwiGLU ----

void Backend::silu_forward(Tensor y, Tensor x) {
  const int64_t M = row_count(x), f = last_dim(x);
  float_matrix(*this, "silu_forward", "x", x, M, f);
  float_matrix(*this, "silu_forward", "y", y, M, f);
  with_f32("silu_forward", {wr(&y), &x}, [&] { silu_forward_impl(y, x); });
}

void Backend::silu_backward(Tensor dx, Tensor dy, Tensor x) {
  const int64_t M = row_count(x), f = last_dim(x);
  float_matrix(*this, "silu_backward", "x", x, M, f);
  float_matrix(*this, "silu_backward", "dy", dy, M, f);
  float_matrix(*this, "silu_backward", "dx", dx, M, f);
  with_f32("silu_backward", {rw(&dx), &dy, &x}, [&] { silu_backward_impl(dx, dy, x); });
}

void Backend::swiglu_forward(Tensor h, Tensor g, Tensor u) {
  const int64_t M = row_count(h), f = last_dim(h);
  float_matrix(*this, "swiglu_forward", "h", h, M, f);
  float_matrix(*this, "swiglu_forward", "g", g, M, f);
  float_matrix(*this, "swiglu_forward", "u", u, M, f);
  with_f32("swiglu_forward", {wr(&h), &g, &u}, [&] { swiglu_forward_impl(h, g, u); });
}

void Backend::swiglu_backward(Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u) {
  const int64_t M = row_count(dh), f = last_dim(dh);
  float_matrix(*this, "swiglu_backward", "dh", dh, M, f);
  float_matrix(*this, "swiglu_backward", "g", g, M, f);
  float_matrix(*this, "swiglu_backward", "u", u, M, f);
  float_matrix(*this, "swiglu_backward", "dg", dg, M, f);
  float_matrix(*this, "swiglu_backward", "du", du, M, f);
  with_f32("swiglu_backward", {wr(&dg), wr(&du), &dh, &g, &u}, [&] { swiglu_backward_impl(dg, du, dh, g, u); });
}

// ---- cross-entropy ----
// Target ranges (a target >= V) need the ids' values: each backend checks them before any write.

namespace {

// logits (N,V) with V > 0, `out` (N) losses or (N,V) gradient, targets (N) I32.
void check_classifier(const Backend& be, const char* op, const Tensor& logits, const Tensor& targets) {
  const int64_t N = row_count(logits), V = last_dim(logits);
  float_matrix(be, op, "logits", logits, N, V);
  index_numel(op, "targets", targets, N);
  AM_CHECK(V > 0, "{}: cross-entropy over an empty vocabulary (logits {})", op, logits.shape_str());
}

}  // namespace

void Backend::cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets) {
  check_classifier(*this, "cross_entropy_forward", logits, targets);
  float_numel(*this, "cross_entropy_forward", "losses", losses, row_count(logits));
  with_f32("cross_entropy_forward", {wr(&losses), &logits, &targets},
           [&] { cross_entropy_forward_impl(losses, logits, targets); });
}

void Backend::cross_entropy_forward_backward(Tensor losses, Tensor logits, Tensor targets, double grad_scale) {
  check_classifier(*this, "cross_entropy_forward_backward", logits, targets);
  float_numel(*this, "cross_entropy_forward_backward", "losses", losses, row_count(logits));
  with_f32("cross_entropy_forward_backward", {wr(&losses), rw(&logits), &targets},
           [&] { cross_entropy_forward_backward_impl(losses, logits, targets, grad_scale); });
}

// The composite's default: the losses, then the gradient over the logits in place. Two passes
// over the logits; a backend with a one-pass kernel overrides this (the CUDA backend does).
void Backend::cross_entropy_forward_backward_impl(Tensor losses, Tensor logits, Tensor targets, double grad_scale) {
  cross_entropy_forward_impl(losses, logits, targets);
  cross_entropy_backward_impl(logits, logits, targets, grad_scale);
}

void Backend::cross_entropy_backward(Tensor dlogits, Tensor logits, Tensor targets, double grad_scale) {
  check_classifier(*this, "cross_entropy_backward", logits, targets);
  float_matrix(*this, "cross_entropy_backward", "dlogits", dlogits, row_count(logits), last_dim(logits));
  with_f32("cross_entropy_backward", {wr(&dlogits), &logits, &targets},
           [&] { cross_entropy_backward_impl(dlogits, logits, targets, grad_scale); });
}

// ---- row softmax helpers ----

void Backend::softmax_rows(Tensor p, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  float_matrix(*this, "softmax_rows", "z", z, N, n);
  float_matrix(*this, "softmax_rows", "p", p, N, n);
  with_f32("softmax_rows", {wr(&p), &z}, [&] { softmax_rows_impl(p, z); });
}

void Backend::softmax_rows_backward(Tensor dz, Tensor dp, Tensor p) {
  const int64_t N = row_count(p), n = last_dim(p);
  float_matrix(*this, "softmax_rows_backward", "p", p, N, n);
  float_matrix(*this, "softmax_rows_backward", "dp", dp, N, n);
  float_matrix(*this, "softmax_rows_backward", "dz", dz, N, n);
  with_f32("softmax_rows_backward", {rw(&dz), &dp, &p}, [&] { softmax_rows_backward_impl(dz, dp, p); });
}

void Backend::logsumexp_rows(Tensor out, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  float_matrix(*this, "logsumexp_rows", "z", z, N, n);
  float_numel(*this, "logsumexp_rows", "out", out, N);
  with_f32("logsumexp_rows", {wr(&out), &z}, [&] { logsumexp_rows_impl(out, z); });
}

void Backend::axpy_rows(Tensor y, Tensor x, Tensor s, double alpha) {
  const int64_t N = row_count(y), n = last_dim(y);
  float_matrix(*this, "axpy_rows", "y", y, N, n);
  float_matrix(*this, "axpy_rows", "x", x, N, n);
  float_numel(*this, "axpy_rows", "s", s, N);
  with_f32("axpy_rows", {rw(&y), &x, &s}, [&] { axpy_rows_impl(y, x, s, alpha); });
}

std::vector<double> Backend::column_sums(Tensor x) {
  float_matrix(*this, "column_sums", "x", x, row_count(x), last_dim(x));
  return with_f32("column_sums", {&x}, [&] { return column_sums_impl(x); });
}

void Backend::add_to_rows(Tensor x, const std::vector<double>& v) {
  const int64_t n = static_cast<int64_t>(v.size());
  float_matrix(*this, "add_to_rows", "x", x, row_count(x), n);
  with_f32("add_to_rows", {rw(&x)}, [&] { add_to_rows_impl(x, v); });
}

// ---- optimizer ----

void Backend::adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWStep& s) {
  const int64_t n = param.numel();
  check_master("adamw_update", "param", param);
  check_count("adamw_update", "param", param, n);
  check_master("adamw_update", "grad", grad);
  check_count("adamw_update", "grad", grad, n);
  check_master("adamw_update", "m", m);
  check_count("adamw_update", "m", m, n);
  check_master("adamw_update", "v", v);
  check_count("adamw_update", "v", v, n);
  AM_CHECK(s.tag > 0, "adamw_update tag {} (must be > 0)", s.tag);
  AM_CHECK(s.step >= 1, "AdamW step must be >= 1 (1-based), got {}", s.step);
  adamw_update_impl(param, grad, m, v, s);
}

void Backend::copy_update_flag(Tensor dst) {
  check_master("copy_update_flag", "dst", dst);
  check_count("copy_update_flag", "dst", dst, 1);
  copy_update_flag_impl(dst);
}

// ---- mixed precision ----

void Backend::refresh_weight_copy(Tensor master) {
  if (bf16_matmul_ && master.data) check_dtype("refresh_weight_copy", "master", master, DType::F32);
  refresh_weight_copy_impl(master);
}

}  // namespace am

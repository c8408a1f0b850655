// dense.cu: token embedding, RMSNorm (and the residual add fused into it), RoPE, SiLU and SwiGLU
// (forward and backward), on the default stream. fp32 tensors; under bf16 storage the RMSNorm
// forwards' output (and rmsnorm_forward's input), RoPE's qkv and SwiGLU's g, u, h (forward) and
// g, u with dg, du, dh of one dtype (backward) may be BF16: the kernels are templated on the storage
// type (bf16_io.cuh) and other combinations fall back to fp32 copies (core/f32_copies.h). The CPU kernels in
// src/cpu/ops_{embedding,rmsnorm,rope,swiglu}.cpp are the spec: the same formulas in the same
// precision (double accumulation and double RoPE rotation).
//
// Determinism: no floating-point atomics. Row reductions are CUB block reductions of a fixed block
// size; the embedding gradient sorts tokens (stable radix sort) and sums each token's rows in
// position order; RMSNorm's dw sums fixed row chunks, then the chunks in order (row_reduce.cuh).
#include "bf16_io.cuh"
#include "check.cuh"
#include "core/f32_copies.h"
#include "core/op_checks.h"
#include "launch.cuh"
#include "ops.cuh"
#include "row_reduce.cuh"

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cmath>
#include <limits>

namespace am::cuda {

namespace {

// Threads of a block that walks the d columns of a row: a multiple of 32, at most 256.
unsigned column_threads(int64_t d) { return static_cast<unsigned>(std::min<int64_t>((d + 31) / 32 * 32, 256)); }

// ---- embedding ----

// Token ids are checked on the host before they are uploaded (Transformer::forward), so these ops
// read nothing back. The kernels still guard memory: a token outside [0, V) reads no table row
// (forward: its output row is NaN, so the loss turns non-finite and the trainer stops; backward:
// its gradient row is dropped).

// out (N,d) = table (V,d)[tokens]; a block per row (grid-stride), threads over columns.
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t V,
                                         int64_t d) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const int64_t tok = tokens[i];
    float* dst = out + i * d;
    if (tok < 0 || tok >= V) {
      for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = NAN;
      continue;
    }
    const float* src = table + tok * d;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = src[c];
  }
}

// keys[i] = tokens[i], or V when it is outside [0, V) (sorted last, dropped); pos[i] = i.
__global__ void embedding_keys_kernel(uint32_t* keys, int32_t* pos, const int32_t* tokens, int64_t n, int64_t V) {
  AM_GRID_STRIDE(i, n) {
    const int64_t tok = tokens[i];
    keys[i] = static_cast<uint32_t>(tok < 0 || tok >= V ? V : tok);
    pos[i] = static_cast<int32_t>(i);
  }
}

// sorted_tok (N) ascending, pos (N) the positions in that order (ascending within equal tokens).
// The block at the first position i of each run of equal tokens v adds the run's dout rows, in
// position order, to dtable[v] -- in float, one addition at a time, like the CPU kernel.
__global__ void embedding_backward_kernel(float* dtable, const uint32_t* sorted_tok, const int32_t* pos,
                                          const float* dout, int64_t N, int64_t V, int64_t d) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const uint32_t v = sorted_tok[i];
    if (int64_t(v) >= V) continue;                  // an id outside the vocabulary (embedding_keys_kernel)
    if (i > 0 && sorted_tok[i - 1] == v) continue;  // not the start of a run (the same for the block)
    int64_t end = i + 1;
    while (end < N && sorted_tok[end] == v) ++end;
    float* dst = dtable + int64_t(v) * d;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
      float acc = dst[c];
      for (int64_t k = i; k < end; ++k) acc += dout[int64_t(pos[k]) * d + c];
      dst[c] = acc;
    }
  }
}

// ---- RMSNorm ----

// One block of B threads per row: ss = sum x^2 (double), r = 1/sqrt(ss/d + eps), out = x r w.
// TO, TX: the storage types of out and x.
template <int B, typename TO, typename TX>
__global__ void rmsnorm_forward_kernel(TO* out, float* rstd, const TX* x, const float* w, int64_t N, int64_t d,
                                       double eps) {
  for (int64_t t = blockIdx.x; t < N; t += gridDim.x) {
    const TX* xr = x + t * d;
    double ss = 0;
    for (int64_t j = threadIdx.x; j < d; j += B) {
      const double v = to_float(xr[j]);
      ss += v * v;
    }
    ss = block_allreduce<B>(ss, SumOp{});
    const double r = 1.0 / sqrt(ss / double(d) + eps);
    if (threadIdx.x == 0) rstd[t] = static_cast<float>(r);
    TO* o = out + t * d;  // may alias x: each thread reads and writes only its own columns
    for (int64_t j = threadIdx.x; j < d; j += B) {
      o[j] = from_float<TO>(static_cast<float>(double(to_float(xr[j])) * r * double(w[j])));
    }
  }
}

// The residual add fused into the norm after it: res_out = a + b (in float, as add), then
// rmsnorm_forward_kernel's row on res_out (the same partial sums and block reduction, so the same
// bits as the two kernels). res_out may alias a or b, out may alias res_out: each thread reads and
// writes only its own columns.
// TO: the storage type of out (the rest is fp32).
template <int B, typename TO>
__global__ void rmsnorm_residual_forward_kernel(float* res_out, TO* out, float* rstd, const float* a, const float* b,
                                                const float* w, int64_t N, int64_t d, double eps) {
  for (int64_t t = blockIdx.x; t < N; t += gridDim.x) {
    const float* ar = a + t * d;
    const float* br = b + t * d;
    float* rr = res_out + t * d;
    double ss = 0;
    for (int64_t j = threadIdx.x; j < d; j += B) {
      const float r = ar[j] + br[j];
      rr[j] = r;
      ss += double(r) * double(r);
    }
    ss = block_allreduce<B>(ss, SumOp{});
    const double rs = 1.0 / sqrt(ss / double(d) + eps);
    if (threadIdx.x == 0) rstd[t] = static_cast<float>(rs);
    TO* o = out + t * d;
    for (int64_t j = threadIdx.x; j < d; j += B)
      o[j] = from_float<TO>(static_cast<float>(double(rr[j]) * rs * double(w[j])));
  }
}

// dx (N,d) += r (w dout - x k), k = r^2 <w dout, x> / d; one block of B threads per row.
template <int B>
__global__ void rmsnorm_backward_dx_kernel(float* dx, const float* dout, const float* x, const float* w,
                                           const float* rstd, int64_t N, int64_t d) {
  for (int64_t t = blockIdx.x; t < N; t += gridDim.x) {
    const float* xr = x + t * d;
    const float* gr = dout + t * d;
    const double r = rstd[t];
    double c = 0;
    for (int64_t j = threadIdx.x; j < d; j += B) c += double(w[j]) * double(gr[j]) * double(xr[j]);
    c = block_allreduce<B>(c, SumOp{});
    const double k = r * r * c / double(d);
    float* o = dx + t * d;
    for (int64_t j = threadIdx.x; j < d; j += B) {
      o[j] += static_cast<float>(r * (double(w[j]) * double(gr[j]) - double(xr[j]) * k));
    }
  }
}

// Terms of dw[j] = sum_t dout[t][j] x[t][j] rstd[t], and its accumulation into dw.
struct RmsnormDwTerm {
  const float* dout;
  const float* x;
  const float* rstd;
  int64_t d;
  __device__ double operator()(int64_t t, int64_t j) const {
    return double(dout[t * d + j]) * double(x[t * d + j]) * double(rstd[t]);
  }
};
struct AccumulateF32 {
  float* dst;
  __device__ void operator()(int64_t j, double s) const { dst[j] += static_cast<float>(s); }
};

// ---- RoPE ----

// One thread per (row r, pair i): the angle (start + t) * theta^(-2i/hd) in double (as the CPU), its cos and
// sign * sin, then the rotation of pair i of every q and k head of the row, in double. S: the
// storage type of qkv (each result cast to float, then stored).
template <typename S>
__global__ void rope_kernel(S* qkv, int64_t rows, int64_t T, int64_t hd, int64_t heads, int64_t row_dim, double theta,
                            double sign, int64_t start) {
  const int64_t half = hd / 2;
  AM_GRID_STRIDE(k, rows * half) {
    const int64_t r = k / half, i = k % half, t = r % T;
    const double inv_freq = pow(theta, -2.0 * double(i) / double(hd));
    const double angle = double(start + t) * inv_freq;
    double sn, cs;
    sincos(angle, &sn, &cs);
    sn *= sign;
    S* row = qkv + r * row_dim;
    for (int64_t h = 0; h < heads; ++h) {
      S* x = row + h * hd;
      const double a = to_float(x[i]), b = to_float(x[i + half]);
      x[i] = from_float<S>(static_cast<float>(a * cs - b * sn));
      x[i + half] = from_float<S>(static_cast<float>(b * cs + a * sn));
    }
  }
}

void rope_apply(Tensor qkv, const AttnShape& s, double theta, double sign, int64_t start) {
  const int64_t rows = s.B * s.T, half = s.head_dim / 2;
  if (rows * half == 0) return;
  with_storage(qkv.dtype, [&](auto tag) {
    using S = decltype(tag);
    launch<rope_kernel<S>>(blocks_for(rows * half), kThreads, 0, compute_stream(), data_as<S>(qkv), rows, s.T,
                           s.head_dim, s.n_heads + s.n_kv_heads, s.qkv_dim(), theta, sign, start);
  });
}

// ---- SiLU / SwiGLU (float, like the CPU) ----

__device__ __forceinline__ float sigmoid_f32(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void silu_forward_kernel(float* y, const float* x, int64_t n) {
  AM_GRID_STRIDE(i, n) y[i] = x[i] * sigmoid_f32(x[i]);
}

__global__ void silu_backward_kernel(float* dx, const float* dy, const float* x, int64_t n) {
  AM_GRID_STRIDE(i, n) {
    const float s = sigmoid_f32(x[i]);
    dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

// TH, TG, TU: the storage types of h, g, u.
template <typename TH, typename TG, typename TU>
__global__ void swiglu_forward_kernel(TH* h, const TG* g, const TU* u, int64_t n) {
  AM_GRID_STRIDE(i, n) {
    const float x = to_float(g[i]);
    h[i] = from_float<TH>(x * sigmoid_f32(x) * to_float(u[i]));
  }
}

// TD: the storage type of dg, du, dh; TI: that of g, u.
template <typename TD, typename TI>
__global__ void swiglu_backward_kernel(TD* dg, TD* du, const TD* dh, const TI* g, const TI* u, int64_t n) {
  AM_GRID_STRIDE(i, n) {
    const float x = to_float(g[i]), s = sigmoid_f32(x), d = to_float(dh[i]), up = to_float(u[i]);
    dg[i] = from_float<TD>(d * up * s * (1.0f + x * (1.0f - s)));
    du[i] = from_float<TD>(d * x * s);
  }
}

}  // namespace

// ---- embedding ----

void embedding_forward(Backend&, Tensor out, Tensor tokens, Tensor table) {
  const int64_t N = tokens.numel(), V = row_count(table), d = last_dim(table);
  if (N == 0 || d == 0) return;
  launch<embedding_forward_kernel>(row_grid(N), column_threads(d), 0, compute_stream(), out.as<float>(),
                                   tokens.as<int32_t>(), table.as<float>(), N, V, d);
}

void embedding_backward(Backend& be, Tensor dtable, Tensor tokens, Tensor dout) {
  const int64_t N = tokens.numel(), V = row_count(dtable), d = last_dim(dtable);
  if (N == 0 || d == 0) return;
  AM_CHECK(N <= std::numeric_limits<int32_t>::max(), "embedding_backward: {} tokens do not fit int32 positions", N);
  AM_CHECK(V < std::numeric_limits<int32_t>::max(), "embedding_backward: vocabulary of {} rows", V);
  const int n = static_cast<int>(N);
  // Keys are in [0, V] (V: an id outside the vocabulary), so only the low end_bit bits differ.
  int end_bit = 1;
  while (end_bit < 32 && (int64_t(1) << end_bit) <= V) ++end_bit;
  Buffer keys_buf = be.alloc(sizeof(uint32_t) * N), keys_out = be.alloc(sizeof(uint32_t) * N),
         pos_in = be.alloc(sizeof(int32_t) * N), pos_out = be.alloc(sizeof(int32_t) * N);
  auto* keys_in = static_cast<uint32_t*>(keys_buf.get());
  auto* sorted = static_cast<uint32_t*>(keys_out.get());
  auto* p_in = static_cast<int32_t*>(pos_in.get());
  auto* p_out = static_cast<int32_t*>(pos_out.get());
  launch<embedding_keys_kernel>(blocks_for(N), kThreads, 0, compute_stream(), keys_in, p_in, tokens.as<int32_t>(), N,
                                V);
  size_t temp_bytes = 0;
  AM_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, sorted, p_in, p_out, n, 0, end_bit,
                                          compute_stream()));
  Buffer temp = be.alloc(temp_bytes);
  AM_CUDA(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, keys_in, sorted, p_in, p_out, n, 0, end_bit,
                                          compute_stream()));
  launch<embedding_backward_kernel>(row_grid(N), column_threads(d), 0, compute_stream(), dtable.as<float>(), sorted,
                                    p_out, dout.as<float>(), N, V, d);
}

// ---- RMSNorm ----

// Native bf16: out and x F32 or BF16; a BF16 rstd or w goes through fp32 copies.
void rmsnorm_forward(Backend& be, Tensor out, Tensor rstd, Tensor x, Tensor w, double eps) {
  const int64_t N = row_count(x), d = last_dim(x);
  if (N == 0) return;
  if (!all_f32({&rstd, &w})) {
    F32Copies f32(be, {Backend::rw(&out), Backend::rw(&rstd), &x, &w});
    rmsnorm_forward(be, out, rstd, x, w, eps);
    f32.narrow();
    return;
  }
  with_row_block(d, [&](auto block) {
    constexpr int B = decltype(block)::value;
    with_storage(out.dtype, [&](auto to) {
      with_storage(x.dtype, [&](auto tx) {
        using TO = decltype(to);
        using TX = decltype(tx);
        launch<rmsnorm_forward_kernel<B, TO, TX>>(row_grid(N), B, 0, compute_stream(), data_as<TO>(out),
                                                  rstd.as<float>(), data_as<TX>(x), w.as<float>(), N, d, eps);
      });
    });
  });
}

// Backend's composite add + rmsnorm_forward in one kernel: one read of a and b, no re-read of res_out
// from memory by a second kernel.
// Native bf16: out F32 or BF16. Any other BF16 argument goes through fp32 copies (the norm reads
// the unrounded sum, so a BF16 res_out cannot be re-read by the kernel).
void rmsnorm_residual_forward(Backend& be, Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor w,
                              double eps) {
  const int64_t N = row_count(a), d = last_dim(a);
  if (N == 0) return;
  if (!all_f32({&res_out, &rstd, &a, &b, &w})) {
    F32Copies f32(be, {Backend::rw(&res_out), Backend::rw(&out), Backend::rw(&rstd), &a, &b, &w});
    rmsnorm_residual_forward(be, res_out, out, rstd, a, b, w, eps);
    f32.narrow();
    return;
  }
  with_row_block(d, [&](auto block) {
    constexpr int B = decltype(block)::value;
    with_storage(out.dtype, [&](auto to) {
      using TO = decltype(to);
      launch<rmsnorm_residual_forward_kernel<B, TO>>(row_grid(N), B, 0, compute_stream(), res_out.as<float>(),
                                                     data_as<TO>(out), rstd.as<float>(), a.as<float>(), b.as<float>(),
                                                     w.as<float>(), N, d, eps);
    });
  });
}

void rmsnorm_backward(Backend& be, Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd) {
  const int64_t N = row_count(x), d = last_dim(x);
  if (N == 0) return;
  with_row_block(d, [&](auto block) {
    constexpr int B = decltype(block)::value;
    launch<rmsnorm_backward_dx_kernel<B>>(row_grid(N), B, 0, compute_stream(), dx.as<float>(), dout.as<float>(),
                                          x.as<float>(), w.as<float>(), rstd.as<float>(), N, d);
  });
  column_reduce(be, N, d, RmsnormDwTerm{dout.as<float>(), x.as<float>(), rstd.as<float>(), d},
                AccumulateF32{dw.as<float>()});
}

// ---- RoPE ----

void rope_forward(Backend&, Tensor qkv, const AttnShape& s, double theta, int64_t start) {
  rope_apply(qkv, s, theta, 1.0, start);
}

void rope_backward(Backend&, Tensor dqkv, const AttnShape& s, double theta) { rope_apply(dqkv, s, theta, -1.0, 0); }

// ---- SiLU / SwiGLU ----

void silu_forward(Backend&, Tensor y, Tensor x) {
  const int64_t M = row_count(x), f = last_dim(x);
  if (M * f == 0) return;
  launch<silu_forward_kernel>(blocks_for(M * f), kThreads, 0, compute_stream(), y.as<float>(), x.as<float>(), M * f);
}

void silu_backward(Backend&, Tensor dx, Tensor dy, Tensor x) {
  const int64_t M = row_count(x), f = last_dim(x);
  if (M * f == 0) return;
  launch<silu_backward_kernel>(blocks_for(M * f), kThreads, 0, compute_stream(), dx.as<float>(), dy.as<float>(),
                               x.as<float>(), M * f);
}

// Native bf16: h, g, u each F32 or BF16.
void swiglu_forward(Backend&, Tensor h, Tensor g, Tensor u) {
  const int64_t M = row_count(h), f = last_dim(h);
  if (M * f == 0) return;
  with_storage(h.dtype, [&](auto th) {
    with_storage(g.dtype, [&](auto tg) {
      with_storage(u.dtype, [&](auto tu) {
        using TH = decltype(th);
        using TG = decltype(tg);
        using TU = decltype(tu);
        launch<swiglu_forward_kernel<TH, TG, TU>>(blocks_for(M * f), kThreads, 0, compute_stream(), data_as<TH>(h),
                                                  data_as<TG>(g), data_as<TU>(u), M * f);
      });
    });
  });
}

// Native bf16: g and u of one dtype, dg, du and dh of one dtype (each F32 or BF16); other
// combinations go through fp32 copies.
void swiglu_backward(Backend& be, Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u) {
  const int64_t M = row_count(dh), f = last_dim(dh);
  if (M * f == 0) return;
  if (g.dtype != u.dtype || dg.dtype != dh.dtype || du.dtype != dh.dtype) {
    F32Copies f32(be, {Backend::rw(&dg), Backend::rw(&du), &dh, &g, &u});
    swiglu_backward(be, dg, du, dh, g, u);
    f32.narrow();
    return;
  }
  with_storage(dh.dtype, [&](auto td) {
    with_storage(g.dtype, [&](auto ti) {
      using TD = decltype(td);
      using TI = decltype(ti);
      launch<swiglu_backward_kernel<TD, TI>>(blocks_for(M * f), kThreads, 0, compute_stream(), data_as<TD>(dg),
                                             data_as<TD>(du), data_as<TD>(dh), data_as<TI>(g), data_as<TI>(u), M * f);
    });
  });
}

}  // namespace am::cuda

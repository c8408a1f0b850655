// attention_tc.cu: causal attention with grouped-query heads on the tensor cores, for bf16 runs
// (run.precision: bf16, Backend::bf16_matmul()). FlashAttention-2's algorithm; attention.cu's
// fp32 kernels stay the path of fp32 runs. attention.cu dispatches here and computes the
// backward's delta for both.
//
// Tiling and warps
//  - 4 warps (128 threads) per block. Tiles of BR = 64 queries and BC = 64 keys; warp w owns the
//    16 rows 16w..16w+15 of the block's tile (queries in the forward and dQ, keys in dK/dV).
//    Every product is mma::mma_bf16 (cuda/mma.cuh): m16n8k16, bf16 operands, fp32 accumulators,
//    one warp per 16 x 8 output tile.
//  - Head dims: kernels are templated on D in {32, 64, 128, 256}, the smallest >= hd; tiles are
//    zero-padded (rows past T, columns past hd), which adds nothing to a product, and only rows < T,
//    columns < hd are written.
//  - Forward: block = (query tile, head, batch), heaviest tiles first. Q, K, V tiles in shared
//    memory. Per key tile up to the diagonal, each warp computes its S = Q K^T (16 x 64, fp32 in
//    registers), masks it (key > query, key >= T), updates the row max m and sum l (online
//    softmax, fp32; a row's 64 columns are spread over the 4 lanes of a quad, reduced by xor
//    shuffles), rescales O and adds P V. P never leaves the registers: the accumulator layout of
//    two adjacent 16 x 8 tiles of S is the A-operand layout of one 16 x 16 tile (mma.cuh's table),
//    so P is rounded to bf16 and packed in place. out = O / l, lse = m + log l.
//  - Backward, no atomics, every element of dqkv written once (as attention.cu):
//      dK, dV: block = (key tile, kv head, batch); K, V tiles stay; for each query head of the
//        group and each query tile from the diagonal on, Q, dO, lse and delta are loaded and each
//        warp computes S^T = K Q^T and dP^T = V dO^T (16 keys x 64 queries),
//        P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - delta), then dV += P^T dO, dK += dS^T Q.
//      dQ: block = (query tile, head, batch); Q, dO, lse, delta stay; per key tile up to the
//        diagonal: S, dP, P, dS as above (16 queries x 64 keys), dQ += dS K.
//    Sums run in a fixed order over fixed tiles: results are bitwise reproducible.
//
// Shared memory: bf16 tiles (uint16_t) of rows D + 8 elements (16 bytes of stagger, so the 8 rows
// a fragment load touches start in different banks), written two elements (one 32-bit word) per
// thread; fp32 lse and delta vectors (BR). Bytes for D = 32 / 64 / 128 / 256:
//   forward (Q, K, V)            15360 / 27648 / 52224 / 101376
//   dK/dV and dQ (4 tiles + 2 vectors)  20992 / 37376 / 70144 / 135680
//
// Rounding points (the CPU emulates them, cpu/ops_attention_bf16.h):
//   Q, K, V rounded to bf16 when loaded from an fp32 qkv; a BF16 qkv (bf16 storage) is read as it
//   is, the same values; out stored in fp32, or rounded once to bf16 when out is BF16 (the CPU:
//   Backend::with_f32 rounds its fp32 result once);
//   S, dP and every accumulator fp32; softmax statistics fp32 (l sums the unrounded P);
//   forward: P rounded to bf16 before P V, relative to the running max (the CPU: the final max);
//   backward: dO rounded to bf16 when loaded; P rounded before P^T dO, dS before dS^T Q and dS K;
//   delta = dO . O from the fp32 tensors (attention.cu's kernel).
#include "attention_tc.cuh"

#include "bf16_io.cuh"
#include "check.cuh"
#include "launch.cuh"
#include "mma.cuh"

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace am::cuda {
namespace {

using mma::FragA;
using mma::FragB;
using mma::FragC;

constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int BR = 64, BC = 64;  // query and key tile rows (BR = 16 kWarps)
static_assert(BR == 16 * kWarps, "one 16-row slice per warp");

struct Geo {
  int T = 0, H = 0, group = 0, hd = 0, hd16 = 0;  // hd16: hd rounded up to 16 (the k extent of Q K^T)
  int64_t row = 0, q_dim = 0, kv_dim = 0;
  float scale = 0;
};

// A stored element as the bits of a bf16 operand: an fp32 value rounded (nearest even), a bf16
// value as it is (bf16 storage).
__device__ __forceinline__ uint16_t operand_bits(float x) { return mma::to_bf16(x); }
__device__ __forceinline__ uint16_t operand_bits(__nv_bfloat16 x) {
  uint16_t bits;
  memcpy(&bits, &x, sizeof(bits));
  return bits;
}
// dst (ROWS, D + 8) bf16 = rows [row0, row0 + ROWS) of one head of an fp32 or bf16 tensor (src:
// column 0 of the head in row 0, rows `stride` apart), fp32 rounded; zero past T and hd. Two
// elements per thread and step, so each 32-bit word of shared memory has one writer.
template <int D, int ROWS, typename S>
__device__ void load_tile(uint16_t* dst, const S* __restrict__ src, int64_t stride, int row0, int T, int hd) {
  for (int idx = threadIdx.x; idx < ROWS * D / 2; idx += kThreads) {
    const int r = idx / (D / 2), d = 2 * (idx % (D / 2)), t = row0 + r;
    const S* s = src + int64_t(t) * stride + d;
    const uint16_t x0 = (t < T && d < hd) ? operand_bits(s[0]) : uint16_t(0);
    const uint16_t x1 = (t < T && d + 1 < hd) ? operand_bits(s[1]) : uint16_t(0);
    *reinterpret_cast<uint32_t*>(dst + r * (D + 8) + d) = mma::pack(x0, x1);
  }
}

template <int ROWS>
__device__ void load_vec(float* dst, const float* __restrict__ src, int row0, int T) {
  for (int r = threadIdx.x; r < ROWS; r += kThreads) dst[r] = row0 + r < T ? src[row0 + r] : 0.f;
}

// acc[j] = A B^T for the warp's 16 rows: A (16 x hd16) at a (rows sd apart), B's rows 8j..8j+7 at b.
template <int N>
__device__ __forceinline__ void dots(FragC (&acc)[N], const uint16_t* a, const uint16_t* b, int sd, int hd16,
                                     int lane) {
#pragma unroll
  for (int j = 0; j < N; ++j) mma::zero(acc[j]);
  for (int kk = 0; kk < hd16; kk += 16) {
    FragA fa;
    mma::load_a(fa, a + kk, sd, 1, lane);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      FragB fb;
      mma::load_b(fb, b + 8 * j * sd + kk, 1, sd, lane);
      mma::mma_bf16(acc[j], fa, fb, acc[j]);
    }
  }
}

// The A operand (16 x 16, bf16) of columns 16kk..16kk+15 of a 16 x 8N fp32 accumulator tile.
template <int N>
__device__ __forceinline__ FragA to_a(const FragC (&c)[N], int kk) {
  FragA a;
  a.r[0] = mma::pack(mma::to_bf16(c[2 * kk].r[0]), mma::to_bf16(c[2 * kk].r[1]));
  a.r[1] = mma::pack(mma::to_bf16(c[2 * kk].r[2]), mma::to_bf16(c[2 * kk].r[3]));
  a.r[2] = mma::pack(mma::to_bf16(c[2 * kk + 1].r[0]), mma::to_bf16(c[2 * kk + 1].r[1]));
  a.r[3] = mma::pack(mma::to_bf16(c[2 * kk + 1].r[2]), mma::to_bf16(c[2 * kk + 1].r[3]));
  return a;
}

// acc[jd] += P V: P (16 x 8N fp32, rounded here) times V (8N x D at v, rows sd apart).
template <int N, int D>
__device__ __forceinline__ void accumulate(FragC (&acc)[D / 8], const FragC (&p)[N], const uint16_t* v, int sd,
                                           int lane) {
#pragma unroll
  for (int kk = 0; kk < N / 2; ++kk) {
    const FragA fa = to_a(p, kk);
#pragma unroll
    for (int jd = 0; jd < D / 8; ++jd) {
      FragB fb;
      mma::load_b(fb, v + 16 * kk * sd + 8 * jd, sd, 1, lane);
      mma::mma_bf16(acc[jd], fa, fb, acc[jd]);
    }
  }
}

template <int D>
__device__ __forceinline__ void zero_all(FragC (&acc)[D / 8]) {
#pragma unroll
  for (int j = 0; j < D / 8; ++j) mma::zero(acc[j]);
}

// Reductions over the 4 lanes of a quad (one accumulator row); every lane gets the same bits.
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Writes the warp's 16 x D accumulator rows (row r of the tile at dst + r * stride) times `mul`
// (per row half: c0, c1 are row g, c2, c3 row g + 8), rows < `rows`, columns < hd; fp32, or
// rounded once to bf16 (T = __nv_bfloat16).
template <int D, typename T>
__device__ __forceinline__ void store_rows(T* dst, int64_t stride, const FragC (&acc)[D / 8], const float (&mul)[2],
                                           int rows, int hd, int lane) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int r = mma::c_row(lane, 2 * hr);
    if (r >= rows) continue;
#pragma unroll
    for (int jd = 0; jd < D / 8; ++jd)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int col = 8 * jd + mma::c_col(lane, e);
        if (col < hd) dst[r * stride + col] = from_float<T>(acc[jd].r[2 * hr + e] * mul[hr]);
      }
  }
}

// ---- forward ----
// TQ, TO: the storage types of qkv and out (float or __nv_bfloat16).
template <int D, typename TQ, typename TO>
__global__ void __launch_bounds__(kThreads)
    attn_tc_fwd_kernel(TO* __restrict__ out, float* __restrict__ lse, const TQ* __restrict__ qkv, Geo g) {
  constexpr int SD = D + 8, NS = BC / 8;
  AM_DYNAMIC_SHARED(float4, attn_tc_smem);
  uint16_t* Qs = reinterpret_cast<uint16_t*>(attn_tc_smem);
  uint16_t* Ks = Qs + BR * SD;
  uint16_t* Vs = Ks + BC * SD;

  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, b = blockIdx.z;
  const TQ* seq = qkv + int64_t(b) * g.T * g.row;
  const TQ* kbase = seq + g.q_dim + int64_t(h / g.group) * g.hd;
  load_tile<D, BR>(Qs, seq + int64_t(h) * g.hd, g.row, q0, g.T, g.hd);

  FragC o[D / 8];
  zero_all<D>(o);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8 of the warp; l: this lane's share
  const int n_kt = (min(g.T, q0 + BR) + BC - 1) / BC;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BC;
    __syncthreads();  // the previous tile's readers of K and V are done
    load_tile<D, BC>(Ks, kbase, g.row, k0, g.T, g.hd);
    load_tile<D, BC>(Vs, kbase + g.kv_dim, g.row, k0, g.T, g.hd);
    __syncthreads();

    FragC s[NS];
    dots(s, Qs + 16 * w * SD, Ks, SD, g.hd16, lane);
// Online softmax per row half; key 0 is in every row's first tile, so m is finite from then on.
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int qi = q0 + 16 * w + mma::c_row(lane, 2 * hr);
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < NS; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int kj = k0 + 8 * j + mma::c_col(lane, e);
          float& x = s[j].r[2 * hr + e];
          x = (kj <= qi && kj < g.T) ? x * g.scale : -INFINITY;
          mx = fmaxf(mx, x);
        }
      const float m_new = fmaxf(m[hr], quad_max(mx));
      const float corr = expf(m[hr] - m_new);
      float ls = 0.f;
#pragma unroll
      for (int j = 0; j < NS; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& x = s[j].r[2 * hr + e];
          x = expf(x - m_new);
          ls += x;
        }
      l[hr] = l[hr] * corr + ls;
      m[hr] = m_new;
#pragma unroll
      for (int jd = 0; jd < D / 8; ++jd) {
        o[jd].r[2 * hr] *= corr;
        o[jd].r[2 * hr + 1] *= corr;
      }
    }
    accumulate<NS, D>(o, s, Vs, SD, lane);
  }

  float inv[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const float lt = quad_sum(l[hr]);
    inv[hr] = 1.f / lt;
    const int qi = q0 + 16 * w + mma::c_row(lane, 2 * hr);
    if (qi < g.T && lane % 4 == 0) lse[(int64_t(b) * g.H + h) * g.T + qi] = m[hr] + logf(lt);
  }
  const int row0 = q0 + 16 * w;
  store_rows<D>(out + (int64_t(b) * g.T + row0) * g.q_dim + int64_t(h) * g.hd, g.q_dim, o, inv, g.T - row0, g.hd, lane);
}

// ---- backward ----

// P and dS of the warp's 16 x 64 tile, in place of s (scores) and dp: rows are the warp's rows
// (`row0` + r, r = c_row), columns (c = 8 j + c_col). `valid(r, c)` says whether the pair is
// inside the causal mask and T; `stat(r, c)` the index into lse_s / dl_s (the query's).
template <int N, typename Valid, typename Stat>
__device__ __forceinline__ void probs(FragC (&s)[N], FragC (&dp)[N], const float* lse_s, const float* dl_s, float scale,
                                      int lane, Valid valid, Stat stat) {
#pragma unroll
  for (int j = 0; j < N; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = mma::c_row(lane, i), c = 8 * j + mma::c_col(lane, i);
      const int qs = stat(r, c);
      const bool ok = valid(r, c);
      const float p = ok ? expf(s[j].r[i] * scale - lse_s[qs]) : 0.f;
      s[j].r[i] = p;
      dp[j].r[i] = ok ? p * (dp[j].r[i] - dl_s[qs]) : 0.f;
    }
}

// TQ: the storage type of qkv (float or __nv_bfloat16).
template <int D, typename TQ>
__global__ void __launch_bounds__(kThreads)
    attn_tc_bwd_dkdv_kernel(float* __restrict__ dqkv, const float* __restrict__ dout, const TQ* __restrict__ qkv,
                            const float* __restrict__ lse, const float* __restrict__ delta, Geo g) {
  constexpr int SD = D + 8, NQ = BR / 8;
  AM_DYNAMIC_SHARED(float4, attn_tc_smem);
  uint16_t* Ks = reinterpret_cast<uint16_t*>(attn_tc_smem);
  uint16_t* Vs = Ks + BC * SD;
  uint16_t* Qs = Vs + BC * SD;
  uint16_t* dOs = Qs + BR * SD;
  float* lse_s = reinterpret_cast<float*>(dOs + BR * SD);
  float* dl_s = lse_s + BR;

  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const int k0 = blockIdx.x * BC, kvh = blockIdx.y, b = blockIdx.z;
  const TQ* seq = qkv + int64_t(b) * g.T * g.row;
  const TQ* kbase = seq + g.q_dim + int64_t(kvh) * g.hd;
  load_tile<D, BC>(Ks, kbase, g.row, k0, g.T, g.hd);
  load_tile<D, BC>(Vs, kbase + g.kv_dim, g.row, k0, g.T, g.hd);

  FragC dk[D / 8], dv[D / 8];
  zero_all<D>(dk);
  zero_all<D>(dv);
  const int kw = k0 + 16 * w;  // the warp's first key
  const int n_qt = (g.T + BR - 1) / BR;
  for (int h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
    const float* lrow = lse + (int64_t(b) * g.H + h) * g.T;
    const float* drow = delta + (int64_t(b) * g.H + h) * g.T;
    for (int qt = k0 / BR; qt < n_qt; ++qt) {  // earlier query tiles see none of these keys
      const int q0 = qt * BR;
      __syncthreads();  // the previous tile's readers are done
      load_tile<D, BR>(Qs, seq + int64_t(h) * g.hd, g.row, q0, g.T, g.hd);
      load_tile<D, BR>(dOs, dout + int64_t(b) * g.T * g.q_dim + int64_t(h) * g.hd, g.q_dim, q0, g.T, g.hd);
      load_vec<BR>(lse_s, lrow, q0, g.T);
      load_vec<BR>(dl_s, drow, q0, g.T);
      __syncthreads();

      FragC st[NQ], dpt[NQ];  // S^T, dP^T: rows the warp's keys, columns the tile's queries
      dots(st, Ks + 16 * w * SD, Qs, SD, g.hd16, lane);
      dots(dpt, Vs + 16 * w * SD, dOs, SD, g.hd16, lane);
      probs(
          st, dpt, lse_s, dl_s, g.scale, lane, [&](int r, int c) { return q0 + c < g.T && kw + r <= q0 + c; },
          [](int, int c) { return c; });
      accumulate<NQ, D>(dv, st, dOs, SD, lane);  // dV += P^T dO
      accumulate<NQ, D>(dk, dpt, Qs, SD, lane);  // dK += dS^T Q
    }
  }
  const float ones[2] = {1.f, 1.f}, scales[2] = {g.scale, g.scale};
  float* dst = dqkv + (int64_t(b) * g.T + kw) * g.row + g.q_dim + int64_t(kvh) * g.hd;
  store_rows<D>(dst, g.row, dk, scales, g.T - kw, g.hd, lane);
  store_rows<D>(dst + g.kv_dim, g.row, dv, ones, g.T - kw, g.hd, lane);
}

template <int D, typename TQ>
__global__ void __launch_bounds__(kThreads)
    attn_tc_bwd_dq_kernel(float* __restrict__ dqkv, const float* __restrict__ dout, const TQ* __restrict__ qkv,
                          const float* __restrict__ lse, const float* __restrict__ delta, Geo g) {
  constexpr int SD = D + 8, NK = BC / 8;
  AM_DYNAMIC_SHARED(float4, attn_tc_smem);
  uint16_t* Qs = reinterpret_cast<uint16_t*>(attn_tc_smem);
  uint16_t* dOs = Qs + BR * SD;
  uint16_t* Ks = dOs + BR * SD;
  uint16_t* Vs = Ks + BC * SD;
  float* lse_s = reinterpret_cast<float*>(Vs + BC * SD);
  float* dl_s = lse_s + BR;

  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, b = blockIdx.z;
  const TQ* seq = qkv + int64_t(b) * g.T * g.row;
  const TQ* kbase = seq + g.q_dim + int64_t(h / g.group) * g.hd;
  load_tile<D, BR>(Qs, seq + int64_t(h) * g.hd, g.row, q0, g.T, g.hd);
  load_tile<D, BR>(dOs, dout + int64_t(b) * g.T * g.q_dim + int64_t(h) * g.hd, g.q_dim, q0, g.T, g.hd);
  load_vec<BR>(lse_s, lse + (int64_t(b) * g.H + h) * g.T, q0, g.T);
  load_vec<BR>(dl_s, delta + (int64_t(b) * g.H + h) * g.T, q0, g.T);

  FragC dq[D / 8];
  zero_all<D>(dq);
  const int qw = q0 + 16 * w;  // the warp's first query
  const int n_kt = (min(g.T, q0 + BR) + BC - 1) / BC;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BC;
    __syncthreads();  // the previous tile's readers of K and V are done
    load_tile<D, BC>(Ks, kbase, g.row, k0, g.T, g.hd);
    load_tile<D, BC>(Vs, kbase + g.kv_dim, g.row, k0, g.T, g.hd);
    __syncthreads();

    FragC s[NK], dp[NK];  // rows the warp's queries, columns the tile's keys
    dots(s, Qs + 16 * w * SD, Ks, SD, g.hd16, lane);
    dots(dp, dOs + 16 * w * SD, Vs, SD, g.hd16, lane);
    probs(
        s, dp, lse_s, dl_s, g.scale, lane, [&](int r, int c) { return qw + r < g.T && k0 + c <= qw + r; },
        [&](int r, int) { return 16 * w + r; });
    accumulate<NK, D>(dq, dp, Ks, SD, lane);  // dQ += dS K
  }
  const float scales[2] = {g.scale, g.scale};
  store_rows<D>(dqkv + (int64_t(b) * g.T + qw) * g.row + int64_t(h) * g.hd, g.row, dq, scales, g.T - qw, g.hd, lane);
}

// ---- host code ----

template <int D>
constexpr size_t kFwdSmem = 2 * size_t(BR + 2 * BC) * (D + 8);
template <int D>
constexpr size_t kBwdSmem = 2 * size_t(2 * BR + 2 * BC) * (D + 8) + sizeof(float) * 2 * BR;

template <typename F>
void with_head_dim(int64_t hd, F&& f) {
  if (hd <= 32) return f(std::integral_constant<int, 32>{});
  if (hd <= 64) return f(std::integral_constant<int, 64>{});
  if (hd <= 128) return f(std::integral_constant<int, 128>{});
  return f(std::integral_constant<int, 256>{});
}

// Launches Kernel on `grid` blocks of kThreads threads with `bytes` of dynamic shared memory.
template <auto Kernel, typename... Args>
void launch_tc(dim3 grid, size_t bytes, Args&&... args) {
  int device = 0, optin = 0;
  AM_CUDA(cudaGetDevice(&device));
  AM_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  AM_CHECK(bytes <= size_t(optin), "attention kernel needs {} bytes of shared memory, the device allows {}", bytes,
           optin);
  AM_CUDA(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  launch<Kernel>(grid, kThreads, bytes, compute_stream(), std::forward<Args>(args)...);
}

Geo make_geo(const AttnShape& s) {
  Geo g;
  g.T = int(s.T);
  g.H = int(s.n_heads);
  g.group = int(s.n_heads / s.n_kv_heads);
  g.hd = int(s.head_dim);
  g.hd16 = int((s.head_dim + 15) / 16 * 16);
  g.row = s.qkv_dim();
  g.q_dim = s.q_dim();
  g.kv_dim = s.kv_dim();
  g.scale = float(1.0 / std::sqrt(double(s.head_dim)));
  return g;
}

unsigned tiles(int64_t n, int tile) { return unsigned((n + tile - 1) / tile); }

// f(p) with p the data of t as float* or __nv_bfloat16* (its storage type: F32 or BF16).
template <typename F>
void with_storage(Tensor t, F&& f) {
  if (t.dtype == DType::BF16) return f(static_cast<__nv_bfloat16*>(t.data));
  return f(t.as<float>());
}

}  // namespace

void attention_forward_tc(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) {
  const Geo g = make_geo(s);
  with_head_dim(s.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    const dim3 grid(tiles(s.T, BR), unsigned(s.n_heads), unsigned(s.B));
    with_storage(qkv, [&](auto* q) {
      with_storage(out, [&](auto* o) {
        using TQ = std::remove_const_t<std::remove_pointer_t<decltype(q)>>;
        using TO = std::remove_pointer_t<decltype(o)>;
        launch_tc<attn_tc_fwd_kernel<D, TQ, TO>>(grid, kFwdSmem<D>, o, lse.as<float>(), q, g);
      });
    });
  });
}

void attention_backward_tc(Tensor dqkv, Tensor dout, Tensor qkv, Tensor lse, const float* delta, const AttnShape& s) {
  const Geo g = make_geo(s);
  with_head_dim(s.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    with_storage(qkv, [&](auto* q) {
      using TQ = std::remove_pointer_t<decltype(q)>;
      const dim3 grid_kv(tiles(s.T, BC), unsigned(s.n_kv_heads), unsigned(s.B));
      launch_tc<attn_tc_bwd_dkdv_kernel<D, TQ>>(grid_kv, kBwdSmem<D>, dqkv.as<float>(), dout.as<float>(),
                                                static_cast<const TQ*>(q), lse.as<float>(), delta, g);
      const dim3 grid_q(tiles(s.T, BR), unsigned(s.n_heads), unsigned(s.B));
      launch_tc<attn_tc_bwd_dq_kernel<D, TQ>>(grid_q, kBwdSmem<D>, dqkv.as<float>(), dout.as<float>(),
                                              static_cast<const TQ*>(q), lse.as<float>(), delta, g);
    });
  });
}

}  // namespace am::cuda

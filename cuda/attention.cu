// attention.cu: causal multi-head attention with grouped-query heads, forward and backward,
// FlashAttention-2 style: tiled, online softmax, the T x T score matrix never materialised.
// fp32 tensors, fp32 arithmetic (the CPU reference, src/cpu/ops_attention.cpp, computes in double).
//
// Design
//  - One code path for every head dim hd <= 256: kernels are templated on a padded head dim
//    D in {32, 64, 128, 256} (the smallest D >= hd). Tiles are zero-padded in shared memory (rows
//    past T, columns past hd), so padding adds nothing to a dot product; dot products over the head
//    dim stop at hd rounded up to 4. Only rows < T and columns < hd are written.
//  - 256 threads per block as a 16 x 16 grid: tx = tid % 16, ty = tid / 16. A score tile
//    (BR x BC) gives thread (ty, tx) rows ty + 16 i and columns tx + 16 j; the 16 threads of one
//    row are the 16 lanes of one half-warp, so row reductions are xor shuffles over 16 lanes. An
//    output tile (rows x D) gives the thread the same rows and the columns g*16*W + tx*W + w
//    (W = min(4, D/16) contiguous columns in each of D/(16 W) groups).
//  - Shared-memory tiles are rows of D + 4 floats (16-byte aligned, so float4 reads along the head
//    dim; +4 staggers the banks: 8 lanes reading 8 consecutive rows hit 32 distinct banks).
//    Probability tiles are rows of (columns + 16) floats: the two half-warps of a warp write
//    rows that start 16 banks apart, so the stores do not conflict.
//  - Forward: block = (query tile of BR = 64 rows, head h, batch b), query tiles heaviest first.
//    Q stays in shared memory; for each key tile up to the diagonal, K and V are loaded, S = Q K^T
//    is scaled and masked (key > query), the running max / sum are updated (online softmax), P
//    goes through shared memory and O += P V. Finally out = O / l and lse = m + log l.
//    D >= 128 loads V into K's buffer after S is computed (2 more barriers, less shared memory).
//  - Backward, without atomics; every element of dqkv is written exactly once:
//      1. delta (B,H,T) = <dout_t, out_t>: one warp per row, double accumulation.
//      2. dK, dV: block = (key tile, kv head, b). K and V stay in shared memory; the block loops
//         over the query heads of its group in order and, for each, over the query tiles from the
//         diagonal to the end. It recomputes P^T = exp(scale K Q^T - lse) and
//         dS^T = P^T (V dO^T - delta), then dV += P^T dO and dK += dS^T Q in registers.
//      3. dQ: block = (query tile, head, b), Q and dO in shared memory; loops over key tiles up
//         to the diagonal recomputing P and dS and accumulating dQ += dS K in registers.
//    Each element is a sum in a fixed order over fixed tiles, so results are bitwise reproducible.
//  - Tiles (rows x keys): 64 x 64 everywhere except the backward at D = 256 (32 x 32, for shared
//    memory). Dynamic shared memory per block, bytes, for D = 32 / 64 / 128 / 256:
//      forward 48128 / 72704 / 88064 / 153600;  dK,dV 78336 / 111104 / 176640 / 145664;
//      dQ 57856 / 90624 / 156160 / 139520.
//    Registers (ptxas, sm_90, no spills): forward <= 128 (launch bounds: 2 blocks of 256 per SM);
//    dK,dV and dQ ~126 at D <= 64 (2 blocks per SM), 168-218 at D >= 128 (1 block per SM).
//    So on an H100 the D = 64 kernels run 2 blocks = 16 warps per SM (25% occupancy), relying on
//    per-thread ILP (16 independent accumulators) rather than many warps.
//  - Inner loops read shared memory as float4: per 4-wide step a warp issues 4 broadcast loads (Q or
//    P rows) and 4 loads of 16 distinct float4 (K or V rows, 2 wavefronts each) for 64 FMAs, i.e.
//    12 shared-memory wavefronts per 16 issue cycles of FMA: close to FMA-bound, fp32 SIMT (no
//    tensor cores: TF32 would not meet the 1e-4 parity with the CPU).
//  - These kernels serve run.precision: fp32. With bf16 matrix products (be.bf16_matmul()) the
//    ops dispatch to the tensor-core kernels of attention_tc.cu (the backward after delta).
#include "attention_tc.cuh"
#include "check.cuh"
#include "core/f32_copies.h"
#include "core/op_checks.h"
#include "launch.cuh"
#include "ops.cuh"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace am::cuda {
namespace {

// ---- device code ----

constexpr int kThreads = 256;  // a 16 x 16 thread grid
constexpr int kMaxHeadDim = 256;

// The geometry every kernel needs.
struct Geo {
  int T = 0, H = 0, group = 0, hd = 0, hd4 = 0;  // group = H / Hkv; hd4 = hd rounded up to 4
  int64_t row = 0;                               // qkv row length (qkv_dim)
  int64_t q_dim = 0;                             // H * hd: offset of k in a qkv row, and the row length of out / dout
  int64_t kv_dim = 0;                            // Hkv * hd: offset of v from k
  float scale = 0;                               // 1 / sqrt(hd)
};

// Output columns of a thread: W contiguous columns in each of G groups, group g starting at
// g*16*W + tx*W.
template <int D>
struct Cols {
  static constexpr int W = D / 16 < 4 ? D / 16 : 4;
  static constexpr int G = D / (16 * W);
  static_assert(W == 2 || W == 4, "head dim tile must be 32, 64, 128 or 256");
  __device__ static int col(int g, int tx) { return g * 16 * W + tx * W; }
};

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }

// W consecutive floats from shared memory (16- or 8-byte aligned).
template <int W>
__device__ __forceinline__ void ldw(float (&v)[W], const float* p) {
  if constexpr (W == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
    const float2 t = *reinterpret_cast<const float2*>(p);
    v[0] = t.x, v[1] = t.y;
  }
}

__device__ __forceinline__ float comp(const float4& v, int u) {
  return u == 0 ? v.x : u == 1 ? v.y : u == 2 ? v.z : v.w;
}

// acc + <a, b> over 4 lanes, in lane order.
__device__ __forceinline__ float dot4(float acc, const float4& a, const float4& b) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}

// acc[i][j] = <row ra + 16 i of A, row rb + 16 j of B> over the first hd4 columns, for two
// shared-memory tiles of row stride S (float4 steps, lanes in order: the same bits as dot4 chains).
template <int R, int C>
__device__ __forceinline__ void tile_dots(float (&acc)[R][C], const float* A, int ra, const float* B, int rb, int S,
                                          int hd4) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < C; ++j) acc[i][j] = 0.f;
  for (int d = 0; d < hd4; d += 4) {
    float4 av[R], bv[C];
#pragma unroll
    for (int i = 0; i < R; ++i) av[i] = ld4(A + (ra + 16 * i) * S + d);
#pragma unroll
    for (int j = 0; j < C; ++j) bv[j] = ld4(B + (rb + 16 * j) * S + d);
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
      for (int j = 0; j < C; ++j) acc[i][j] = dot4(acc[i][j], av[i], bv[j]);
  }
}

// Butterfly reductions over the 16 lanes of a half-warp (every lane ends with the same bits:
// each step adds a commutative pair).
__device__ __forceinline__ float max16(float v) {
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float sum16(float v) {
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// dst (ROWS, D + 4) = rows [row0, row0 + ROWS) of one head: src points at column 0 of the head in
// row 0 of the sequence, rows `stride` floats apart. Rows >= T and columns >= hd are zero.
template <int D, int ROWS>
__device__ void load_tile(float* dst, const float* __restrict__ src, int64_t stride, int row0, int T, int hd) {
  for (int idx = threadIdx.x; idx < ROWS * D; idx += kThreads) {
    const int r = idx / D, d = idx % D, t = row0 + r;
    dst[r * (D + 4) + d] = (t < T && d < hd) ? src[int64_t(t) * stride + d] : 0.f;
  }
}

// dst[r] = src[row0 + r] for rows < T, else 0 (r < ROWS).
template <int ROWS>
__device__ void load_vec(float* dst, const float* __restrict__ src, int row0, int T) {
  for (int r = threadIdx.x; r < ROWS; r += kThreads) dst[r] = row0 + r < T ? src[row0 + r] : 0.f;
}

// acc = 0: a register tile (rows x the thread's output columns).
template <int R, int G, int W>
__device__ __forceinline__ void zero_acc(float (&acc)[R][G][W]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int gg = 0; gg < G; ++gg)
#pragma unroll
      for (int w = 0; w < W; ++w) acc[i][gg][w] = 0.f;
}

// ---- forward ----

// Before the first key tile: o = 0, the running max m = -inf and the running sum l = 0.
template <int RI, int G, int W>
__device__ __forceinline__ void fwd_init(float (&o)[RI][G][W], float (&m)[RI], float (&l)[RI]) {
#pragma unroll
  for (int i = 0; i < RI; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int gg = 0; gg < G; ++gg)
#pragma unroll
      for (int w = 0; w < W; ++w) o[i][gg][w] = 0.f;
  }
}

// Online softmax over the key tile at k0: scales and masks s (key > query), moves the running
// max m and sum l on, writes P = exp(s - m) to Ps (rows of PS floats) and rescales o. Key 0 is in
// every row's first tile, so m is finite from the first tile on.
template <int D, int PS, int RI, int CJ>
__device__ __forceinline__ void fwd_softmax_update(float (&s)[RI][CJ], float (&m)[RI], float (&l)[RI],
                                                   float (&o)[RI][Cols<D>::G][Cols<D>::W], float* Ps, int q0, int k0,
                                                   int ty, int tx, int T, float scale) {
  using C = Cols<D>;
#pragma unroll
  for (int i = 0; i < RI; ++i) {
    const int qi = q0 + ty + 16 * i;
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < CJ; ++j) {
      const int kj = k0 + tx + 16 * j;
      s[i][j] = (kj <= qi && kj < T) ? s[i][j] * scale : -INFINITY;
      mx = fmaxf(mx, s[i][j]);
    }
    const float m_new = fmaxf(m[i], max16(mx));
    const float corr = expf(m[i] - m_new);
    float ls = 0.f;
#pragma unroll
    for (int j = 0; j < CJ; ++j) {
      const float p = expf(s[i][j] - m_new);
      ls += p;
      Ps[(ty + 16 * i) * PS + tx + 16 * j] = p;
    }
    l[i] = l[i] * corr + ls;
    m[i] = m_new;
#pragma unroll
    for (int gg = 0; gg < C::G; ++gg)
#pragma unroll
      for (int w = 0; w < C::W; ++w) o[i][gg][w] *= corr;
  }
}

// out = o / l and lse = m + log l for the thread's rows < T (l summed over the row's 16 threads).
template <int D, int RI>
__device__ __forceinline__ void fwd_write_out(float* __restrict__ out, float* __restrict__ lse,
                                              const float (&o)[RI][Cols<D>::G][Cols<D>::W], const float (&m)[RI],
                                              const float (&l)[RI], int q0, int h, int b, int ty, int tx, Geo g) {
  using C = Cols<D>;
#pragma unroll
  for (int i = 0; i < RI; ++i) {
    const float lt = sum16(l[i]);
    const int qi = q0 + ty + 16 * i;
    if (qi >= g.T) continue;
    if (tx == 0) lse[(int64_t(b) * g.H + h) * g.T + qi] = m[i] + logf(lt);
    float* dst = out + (int64_t(b) * g.T + qi) * g.q_dim + int64_t(h) * g.hd;
#pragma unroll
    for (int gg = 0; gg < C::G; ++gg)
#pragma unroll
      for (int w = 0; w < C::W; ++w) {
        const int col = C::col(gg, tx) + w;
        if (col < g.hd) dst[col] = o[i][gg][w] / lt;
      }
  }
}

// Grid (query tiles, H, B); shared memory Q (BR, D+4), K (BC, D+4), V (BC, D+4) unless it shares
// K's buffer, P (BR, BC+16).
template <int D, int BR, int BC, bool kAliasKV>
__global__ void __launch_bounds__(kThreads, 2)
    attn_fwd_kernel(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv, Geo g) {
  constexpr int S = D + 4, PS = BC + 16, RI = BR / 16, CJ = BC / 16;
  using C = Cols<D>;
  AM_DYNAMIC_SHARED(float4, attn_smem);
  float* Qs = reinterpret_cast<float*>(attn_smem);
  float* Ks = Qs + BR * S;
  float* Vs = kAliasKV ? Ks : Ks + BC * S;
  float* Ps = Vs + BC * S;

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, b = blockIdx.z;
  const float* seq = qkv + int64_t(b) * g.T * g.row;
  const float* kbase = seq + g.q_dim + int64_t(h / g.group) * g.hd;
  const float* vbase = kbase + g.kv_dim;
  load_tile<D, BR>(Qs, seq + int64_t(h) * g.hd, g.row, q0, g.T, g.hd);

  float o[RI][C::G][C::W], m[RI], l[RI];  // l: this thread's share of the row sum
  fwd_init(o, m, l);

  const int n_kt = (min(g.T, q0 + BR) + BC - 1) / BC;  // key tiles up to the diagonal
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BC;
    __syncthreads();  // the previous tile's readers of K, V and P are done
    load_tile<D, BC>(Ks, kbase, g.row, k0, g.T, g.hd);
    if constexpr (!kAliasKV) load_tile<D, BC>(Vs, vbase, g.row, k0, g.T, g.hd);
    __syncthreads();

    // Scores: rows queries, columns keys. Written out rather than with tile_dots() or a helper of
    // their own: through either, ptxas spilled 8 bytes in the D = 256 instance of this kernel.
    float s[RI][CJ];
#pragma unroll
    for (int i = 0; i < RI; ++i)
#pragma unroll
      for (int j = 0; j < CJ; ++j) s[i][j] = 0.f;
    for (int d = 0; d < g.hd4; d += 4) {
      float4 qv[RI], kv[CJ];
#pragma unroll
      for (int i = 0; i < RI; ++i) qv[i] = ld4(Qs + (ty + 16 * i) * S + d);
#pragma unroll
      for (int j = 0; j < CJ; ++j) kv[j] = ld4(Ks + (tx + 16 * j) * S + d);
#pragma unroll
      for (int i = 0; i < RI; ++i)
#pragma unroll
        for (int j = 0; j < CJ; ++j) s[i][j] = dot4(s[i][j], qv[i], kv[j]);
    }

    fwd_softmax_update<D, PS>(s, m, l, o, Ps, q0, k0, ty, tx, g.T, g.scale);
    if constexpr (kAliasKV) {
      __syncthreads();  // every thread is done with K
      load_tile<D, BC>(Vs, vbase, g.row, k0, g.T, g.hd);
    }
    __syncthreads();

// O += P V, written out too: through a helper (the same PTX but for register numbering) ptxas
// allocated the registers of three of the four instances differently.
#pragma unroll 2
    for (int c = 0; c < BC; c += 4) {
      float4 pv[RI];
#pragma unroll
      for (int i = 0; i < RI; ++i) pv[i] = ld4(Ps + (ty + 16 * i) * PS + c);
#pragma unroll
      for (int u = 0; u < 4; ++u) {
#pragma unroll
        for (int gg = 0; gg < C::G; ++gg) {
          float vv[C::W];
          ldw(vv, Vs + (c + u) * S + C::col(gg, tx));
#pragma unroll
          for (int i = 0; i < RI; ++i)
#pragma unroll
            for (int w = 0; w < C::W; ++w) o[i][gg][w] = fmaf(comp(pv[i], u), vv[w], o[i][gg][w]);
        }
      }
    }
  }
  fwd_write_out<D>(out, lse, o, m, l, q0, h, b, ty, tx, g);
}

// ---- backward ----

__device__ __forceinline__ float as_float(float x) { return x; }
__device__ __forceinline__ float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// delta (B,H,T) = <dout_t, out_t> per head: one warp per (b, t, h) row of dout / out (B*T*H, hd);
// out fp32 or bf16 (TO = __nv_bfloat16 under bf16 storage, widened exactly).
template <typename TO>
__global__ void attn_delta_kernel(float* __restrict__ delta, const float* __restrict__ dout, const TO* __restrict__ out,
                                  int64_t rows, int T, int H, int hd) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    double acc = 0;
    for (int i = lane; i < hd; i += 32) acc += double(dout[r * hd + i]) * double(as_float(out[r * hd + i]));
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) {
      const int64_t h = r % H, t = (r / H) % T, b = r / (int64_t(H) * T);
      delta[(b * H + h) * T + t] = float(acc);
    }
  }
}

// Q and dO (BR, D+4) of query tile q0 in head h, and its lse and delta (BR): qbase, obase, lrow
// and drow point at the head's column 0 / row 0 (rows past T are zero).
template <int D, int BR>
__device__ __forceinline__ void load_query_tile(float* Qs, float* dOs, float* lse_s, float* dl_s, const float* qbase,
                                                const float* obase, const float* lrow, const float* drow, int q0,
                                                Geo g) {
  load_tile<D, BR>(Qs, qbase, g.row, q0, g.T, g.hd);
  load_tile<D, BR>(dOs, obase, g.q_dim, q0, g.T, g.hd);
  load_vec<BR>(lse_s, lrow, q0, g.T);
  load_vec<BR>(dl_s, drow, q0, g.T);
}

// P^T and dS^T of key tile k0 against query tile q0 from S^T and dP^T (rows keys ty + 16 i,
// columns queries tx + 16 j), into Pt and dSt (rows of PS floats); zero where the key is after the
// query or the query past T.
template <int PS, int RK, int CQ>
__device__ __forceinline__ void dkdv_store_probs(float* Pt, float* dSt, const float (&s)[RK][CQ],
                                                 const float (&dp)[RK][CQ], const float* lse_s, const float* dl_s,
                                                 int k0, int q0, int ty, int tx, int T, float scale) {
#pragma unroll
  for (int i = 0; i < RK; ++i) {
    const int kj = k0 + ty + 16 * i;
#pragma unroll
    for (int j = 0; j < CQ; ++j) {
      const int qr = tx + 16 * j, qi = q0 + qr;
      const bool valid = qi < T && kj <= qi;
      const float p = valid ? expf(s[i][j] * scale - lse_s[qr]) : 0.f;
      Pt[(ty + 16 * i) * PS + qr] = p;
      dSt[(ty + 16 * i) * PS + qr] = valid ? p * (dp[i][j] - dl_s[qr]) : 0.f;
    }
  }
}

// dK (times the scale) and dV of the thread's keys < T into dqkv.
template <int D, int RK>
__device__ __forceinline__ void dkdv_write_out(float* __restrict__ dqkv, const float (&dk)[RK][Cols<D>::G][Cols<D>::W],
                                               const float (&dv)[RK][Cols<D>::G][Cols<D>::W], int k0, int kvh, int b,
                                               int ty, int tx, Geo g) {
  using C = Cols<D>;
#pragma unroll
  for (int i = 0; i < RK; ++i) {
    const int kj = k0 + ty + 16 * i;
    if (kj >= g.T) continue;
    float* dst = dqkv + (int64_t(b) * g.T + kj) * g.row + g.q_dim + int64_t(kvh) * g.hd;
#pragma unroll
    for (int gg = 0; gg < C::G; ++gg)
#pragma unroll
      for (int w = 0; w < C::W; ++w) {
        const int col = C::col(gg, tx) + w;
        if (col < g.hd) {
          dst[col] = dk[i][gg][w] * g.scale;
          dst[g.kv_dim + col] = dv[i][gg][w];
        }
      }
  }
}

// dK and dV of one key tile. Grid (key tiles, Hkv, B); shared memory K, V (BC, D+4), Q, dO
// (BR, D+4), P^T and dS^T (BC, BR+16), lse and delta (BR).
template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads, D <= 64 ? 2 : 1)
    attn_bwd_dkdv_kernel(float* __restrict__ dqkv, const float* __restrict__ dout, const float* __restrict__ qkv,
                         const float* __restrict__ lse, const float* __restrict__ delta, Geo g) {
  constexpr int S = D + 4, PS = BR + 16, RK = BC / 16, CQ = BR / 16;
  using C = Cols<D>;
  AM_DYNAMIC_SHARED(float4, attn_smem);
  float* Ks = reinterpret_cast<float*>(attn_smem);
  float* Vs = Ks + BC * S;
  float* Qs = Vs + BC * S;
  float* dOs = Qs + BR * S;
  float* Pt = dOs + BR * S;
  float* dSt = Pt + BC * PS;
  float* lse_s = dSt + BC * PS;
  float* dl_s = lse_s + BR;

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int k0 = blockIdx.x * BC, kvh = blockIdx.y, b = blockIdx.z;
  const float* seq = qkv + int64_t(b) * g.T * g.row;
  const float* kbase = seq + g.q_dim + int64_t(kvh) * g.hd;
  load_tile<D, BC>(Ks, kbase, g.row, k0, g.T, g.hd);
  load_tile<D, BC>(Vs, kbase + g.kv_dim, g.row, k0, g.T, g.hd);

  float dk[RK][C::G][C::W], dv[RK][C::G][C::W];
  zero_acc(dk);
  zero_acc(dv);

  const int n_qt = (g.T + BR - 1) / BR;
  for (int h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
    const float* qbase = seq + int64_t(h) * g.hd;
    const float* obase = dout + int64_t(b) * g.T * g.q_dim + int64_t(h) * g.hd;
    const float* lrow = lse + (int64_t(b) * g.H + h) * g.T;
    const float* drow = delta + (int64_t(b) * g.H + h) * g.T;
    for (int qt = k0 / BR; qt < n_qt; ++qt) {  // earlier query tiles see none of these keys
      const int q0 = qt * BR;
      __syncthreads();  // the previous tile's readers of Q, dO, P^T and dS^T are done
      load_query_tile<D, BR>(Qs, dOs, lse_s, dl_s, qbase, obase, lrow, drow, q0, g);
      __syncthreads();

      // S^T and dP^T: rows are keys ty + 16 i, columns queries tx + 16 j.
      float s[RK][CQ], dp[RK][CQ];
      tile_dots(s, Ks, ty, Qs, tx, S, g.hd4);  // (fmaf(k, q) == fmaf(q, k): the same bits)
      tile_dots(dp, Vs, ty, dOs, tx, S, g.hd4);
      dkdv_store_probs<PS>(Pt, dSt, s, dp, lse_s, dl_s, k0, q0, ty, tx, g.T, g.scale);
      __syncthreads();

// dV += P^T dO, dK += dS^T Q over the BR queries of the tile. Written out, like the two
// tile_dots() calls above: through a helper, ptxas allocated this kernel's registers differently.
#pragma unroll 2
      for (int q = 0; q < BR; q += 4) {
        float4 pv[RK], sv[RK];
#pragma unroll
        for (int i = 0; i < RK; ++i) {
          pv[i] = ld4(Pt + (ty + 16 * i) * PS + q);
          sv[i] = ld4(dSt + (ty + 16 * i) * PS + q);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
#pragma unroll
          for (int gg = 0; gg < C::G; ++gg) {
            float ov[C::W], qv[C::W];
            ldw(ov, dOs + (q + u) * S + C::col(gg, tx));
            ldw(qv, Qs + (q + u) * S + C::col(gg, tx));
#pragma unroll
            for (int i = 0; i < RK; ++i)
#pragma unroll
              for (int w = 0; w < C::W; ++w) {
                dv[i][gg][w] = fmaf(comp(pv[i], u), ov[w], dv[i][gg][w]);
                dk[i][gg][w] = fmaf(comp(sv[i], u), qv[w], dk[i][gg][w]);
              }
          }
        }
      }
    }
  }
  dkdv_write_out<D>(dqkv, dk, dv, k0, kvh, b, ty, tx, g);
}

// dS of query tile q0 against key tile k0 into dSs (rows queries, PS floats): rows are queries
// ty + 16 i, columns keys tx + 16 j; zero where the key is after the query or the query past T.
template <int D, int PS, int RI, int CJ>
__device__ __forceinline__ void dq_scores(float* dSs, const float* Qs, const float* Ks, const float* dOs,
                                          const float* Vs, const float* lse_s, const float* dl_s, int q0, int k0,
                                          int ty, int tx, int T, int hd4, float scale) {
  constexpr int S = D + 4;
  float s[RI][CJ], dp[RI][CJ];  // S and dP
  tile_dots(s, Qs, ty, Ks, tx, S, hd4);
  tile_dots(dp, dOs, ty, Vs, tx, S, hd4);
#pragma unroll
  for (int i = 0; i < RI; ++i) {
    const int qr = ty + 16 * i, qi = q0 + qr;
#pragma unroll
    for (int j = 0; j < CJ; ++j) {
      const int kj = k0 + tx + 16 * j;
      const bool valid = qi < T && kj <= qi;
      const float p = valid ? expf(s[i][j] * scale - lse_s[qr]) : 0.f;
      dSs[qr * PS + tx + 16 * j] = valid ? p * (dp[i][j] - dl_s[qr]) : 0.f;
    }
  }
}

// dq += dS K over the BK keys of the tile: dS with rows of PS floats (rows ty + 16 i of the
// thread), K with rows of D + 4 (the thread's columns).
template <int D, int BK, int PS, int R>
__device__ __forceinline__ void dq_accumulate(float (&dq)[R][Cols<D>::G][Cols<D>::W], const float* dSs, const float* Ks,
                                              int ty, int tx) {
  constexpr int S = D + 4;
  using C = Cols<D>;
#pragma unroll 2
  for (int c = 0; c < BK; c += 4) {
    float4 sv[R];
#pragma unroll
    for (int i = 0; i < R; ++i) sv[i] = ld4(dSs + (ty + 16 * i) * PS + c);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
#pragma unroll
      for (int gg = 0; gg < C::G; ++gg) {
        float kk[C::W];
        ldw(kk, Ks + (c + u) * S + C::col(gg, tx));
#pragma unroll
        for (int i = 0; i < R; ++i)
#pragma unroll
          for (int w = 0; w < C::W; ++w) dq[i][gg][w] = fmaf(comp(sv[i], u), kk[w], dq[i][gg][w]);
      }
    }
  }
}

// dQ (times the scale) of the thread's queries < T into dqkv.
template <int D, int RI>
__device__ __forceinline__ void dq_write_out(float* __restrict__ dqkv, const float (&dq)[RI][Cols<D>::G][Cols<D>::W],
                                             int q0, int h, int b, int ty, int tx, Geo g) {
  using C = Cols<D>;
#pragma unroll
  for (int i = 0; i < RI; ++i) {
    const int qi = q0 + ty + 16 * i;
    if (qi >= g.T) continue;
    float* dst = dqkv + (int64_t(b) * g.T + qi) * g.row + int64_t(h) * g.hd;
#pragma unroll
    for (int gg = 0; gg < C::G; ++gg)
#pragma unroll
      for (int w = 0; w < C::W; ++w) {
        const int col = C::col(gg, tx) + w;
        if (col < g.hd) dst[col] = dq[i][gg][w] * g.scale;
      }
  }
}

// dQ of one query tile. Grid (query tiles, H, B); shared memory Q, dO (BR, D+4), K, V (BC, D+4),
// dS (BR, BC+16), lse and delta (BR).
template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads, D <= 64 ? 2 : 1)
    attn_bwd_dq_kernel(float* __restrict__ dqkv, const float* __restrict__ dout, const float* __restrict__ qkv,
                       const float* __restrict__ lse, const float* __restrict__ delta, Geo g) {
  constexpr int S = D + 4, PS = BC + 16, RI = BR / 16;
  using C = Cols<D>;
  AM_DYNAMIC_SHARED(float4, attn_smem);
  float* Qs = reinterpret_cast<float*>(attn_smem);
  float* dOs = Qs + BR * S;
  float* Ks = dOs + BR * S;
  float* Vs = Ks + BC * S;
  float* dSs = Vs + BC * S;
  float* lse_s = dSs + BR * PS;
  float* dl_s = lse_s + BR;

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, b = blockIdx.z;
  const float* seq = qkv + int64_t(b) * g.T * g.row;
  const float* kbase = seq + g.q_dim + int64_t(h / g.group) * g.hd;
  // Not through load_query_tile(): that changed the address arithmetic of the D >= 128 instances.
  load_tile<D, BR>(Qs, seq + int64_t(h) * g.hd, g.row, q0, g.T, g.hd);
  load_tile<D, BR>(dOs, dout + int64_t(b) * g.T * g.q_dim + int64_t(h) * g.hd, g.q_dim, q0, g.T, g.hd);
  load_vec<BR>(lse_s, lse + (int64_t(b) * g.H + h) * g.T, q0, g.T);
  load_vec<BR>(dl_s, delta + (int64_t(b) * g.H + h) * g.T, q0, g.T);

  float dq[RI][C::G][C::W];
  zero_acc(dq);

  const int n_kt = (min(g.T, q0 + BR) + BC - 1) / BC;
  for (int kt = 0; kt < n_kt; ++kt) {
    const int k0 = kt * BC;
    __syncthreads();  // the previous tile's readers of K and dS are done
    load_tile<D, BC>(Ks, kbase, g.row, k0, g.T, g.hd);
    load_tile<D, BC>(Vs, kbase + g.kv_dim, g.row, k0, g.T, g.hd);
    __syncthreads();
    dq_scores<D, PS, RI, BC / 16>(dSs, Qs, Ks, dOs, Vs, lse_s, dl_s, q0, k0, ty, tx, g.T, g.hd4, g.scale);
    __syncthreads();
    dq_accumulate<D, BC, PS>(dq, dSs, Ks, ty, tx);
  }
  dq_write_out<D>(dqkv, dq, q0, h, b, ty, tx, g);
}

// ---- host code ----

// Tile sizes per padded head dim.
template <int D>
struct FwdCfg {
  static constexpr int BR = 64, BC = 64;
  static constexpr bool kAliasKV = D >= 128;
  static constexpr size_t smem =
      sizeof(float) * (size_t(BR) * (D + 4) + size_t(kAliasKV ? 1 : 2) * BC * (D + 4) + size_t(BR) * (BC + 16));
};
template <int D>
struct BwdCfg {
  static constexpr int BR = D >= 256 ? 32 : 64, BC = BR;
  // dK/dV: K, V, Q, dO tiles, P^T and dS^T, lse and delta; dQ: Q, dO, K, V, dS, lse and delta.
  static constexpr size_t smem_dkdv =
      sizeof(float) * (size_t(2 * BC + 2 * BR) * (D + 4) + size_t(2 * BC) * (BR + 16) + 2 * BR);
  static constexpr size_t smem_dq =
      sizeof(float) * (size_t(2 * BR + 2 * BC) * (D + 4) + size_t(BR) * (BC + 16) + 2 * BR);
};

// Calls f(std::integral_constant<int, D>) for the padded head dim D of hd.
template <typename F>
void with_head_dim(int64_t hd, F&& f) {
  if (hd <= 32) return f(std::integral_constant<int, 32>{});
  if (hd <= 64) return f(std::integral_constant<int, 64>{});
  if (hd <= 128) return f(std::integral_constant<int, 128>{});
  return f(std::integral_constant<int, 256>{});
}

// Lets `kernel` use `bytes` of dynamic shared memory (above the default 48 KB).
template <typename K>
void allow_smem(K kernel, size_t bytes) {
  int device = 0, optin = 0;
  AM_CUDA(cudaGetDevice(&device));
  AM_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  AM_CHECK(bytes <= size_t(optin), "attention kernel needs {} bytes of shared memory, the device allows {}", bytes,
           optin);
  AM_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// Launches Kernel on `grid` blocks of kThreads threads with `bytes` of dynamic shared memory (allowed first).
template <auto Kernel, typename... Args>
void launch_tiles(dim3 grid, size_t bytes, Args&&... args) {
  allow_smem(Kernel, bytes);
  launch<Kernel>(grid, kThreads, bytes, compute_stream(), std::forward<Args>(args)...);
}

// The kernels' own limits (Backend has checked the shape itself).
void check_limits(const char* op, const AttnShape& s) {
  if (s.head_dim > kMaxHeadDim) {
    throw UserError(
        fmt::format("{}: the CUDA attention kernels support head dims up to {}, got {}", op, kMaxHeadDim, s.head_dim),
        "choose model.d_model / model.n_heads <= 256, or run.backend: cpu");
  }
  AM_CHECK(s.B <= 65535 && s.n_heads <= 65535 && s.T <= (int64_t(1) << 30),
           "{}: attention shape B={} H={} T={} exceeds the kernels' grid limits", op, s.B, s.n_heads, s.T);
}

Geo make_geo(const AttnShape& s) {
  Geo g;
  g.T = int(s.T);
  g.H = int(s.n_heads);
  g.group = int(s.n_heads / s.n_kv_heads);
  g.hd = int(s.head_dim);
  g.hd4 = int((s.head_dim + 3) / 4 * 4);
  g.row = s.qkv_dim();
  g.q_dim = s.q_dim();
  g.kv_dim = s.kv_dim();
  g.scale = float(1.0 / std::sqrt(double(s.head_dim)));
  return g;
}

int tiles(int64_t n, int tile) { return int((n + tile - 1) / tile); }

// bf16 storage (Backend's "bf16 storage"; CudaBackend names the attention ops in native_bf16): the
// tensor-core kernels read qkv and write out as F32 or BF16 themselves, and the delta kernel reads
// out of either; any other BF16 argument goes through an fp32 copy (core/f32_copies.h), with the
// rounding points of Backend::with_f32: an input widened exactly, an output rounded once when
// copied back.
void launch_delta(float* delta, Tensor dout, Tensor out, const Geo& g, int64_t rows) {
  const int blocks = int(std::min<int64_t>((rows + 7) / 8, 65535));  // 8 warps per block
  if (out.dtype == DType::BF16) {
    launch<attn_delta_kernel<__nv_bfloat16>>(blocks, 256, 0, compute_stream(), delta, dout.as<float>(),
                                             static_cast<const __nv_bfloat16*>(out.data), rows, g.T, g.H, g.hd);
  } else {
    launch<attn_delta_kernel<float>>(blocks, 256, 0, compute_stream(), delta, dout.as<float>(), out.as<float>(), rows,
                                     g.T, g.H, g.hd);
  }
}

}  // namespace

void attention_forward(Backend& be, Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) {
  check_limits("attention_forward", s);
  if (s.B == 0 || s.T == 0) return;
  if (be.bf16_matmul()) {  // tensor cores (attention_tc.cu); qkv and out F32 or BF16
    // A BF16 out with an odd head dim goes through an fp32 copy: neighbouring heads would share
    // 4-byte words, which the simulator's per-word shadow takes for a race between blocks.
    F32Copies f32(be, {Backend::wr(s.head_dim % 2 == 0 ? nullptr : &out), Backend::wr(&lse)});
    attention_forward_tc(out, lse, qkv, s);
    f32.narrow();
    return;
  }
  const Geo g = make_geo(s);
  with_head_dim(s.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    using C = FwdCfg<D>;
    const dim3 grid(tiles(s.T, C::BR), unsigned(s.n_heads), unsigned(s.B));
    launch_tiles<attn_fwd_kernel<D, C::BR, C::BC, C::kAliasKV>>(grid, C::smem, out.as<float>(), lse.as<float>(),
                                                                qkv.as<float>(), g);
  });
}

void attention_backward(Backend& be, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, const AttnShape& s) {
  check_limits("attention_backward", s);
  if (s.B == 0 || s.T == 0) return;
  const Geo g = make_geo(s);

  // delta (B,H,T)
  const int64_t rows = s.B * s.T * s.n_heads;
  Buffer delta_buf = be.alloc(sizeof(float) * size_t(rows));
  float* delta = static_cast<float*>(delta_buf.get());
  if (be.bf16_matmul()) {  // tensor cores (attention_tc.cu); qkv and out F32 or BF16
    F32Copies f32(be, {&dout, Backend::wr(&dqkv), &lse});
    launch_delta(delta, dout, out, g, rows);
    attention_backward_tc(dqkv, dout, qkv, lse, delta, s);
    f32.narrow();
    return;
  }
  launch_delta(delta, dout, out, g, rows);

  with_head_dim(s.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    using C = BwdCfg<D>;
    const dim3 grid_kv(tiles(s.T, C::BC), unsigned(s.n_kv_heads), unsigned(s.B));
    launch_tiles<attn_bwd_dkdv_kernel<D, C::BR, C::BC>>(grid_kv, C::smem_dkdv, dqkv.as<float>(), dout.as<float>(),
                                                        qkv.as<float>(), lse.as<float>(), delta, g);

    const dim3 grid_q(tiles(s.T, C::BR), unsigned(s.n_heads), unsigned(s.B));
    launch_tiles<attn_bwd_dq_kernel<D, C::BR, C::BC>>(grid_q, C::smem_dq, dqkv.as<float>(), dout.as<float>(),
                                                      qkv.as<float>(), lse.as<float>(), delta, g);
  });
}

}  // namespace am::cuda

// grouped_gemm_tc.cu: the experts' bf16 products (Backend::matmul_grouped under bf16 matrix
// products) as ONE hand-written kernel launch per call of up to kMaxGroups problems, on the tensor
// cores through cuda/mma.cuh (m16n8k16, bf16 operands, fp32 accumulators). See grouped_gemm.cuh
// for the semantics (GemmProblem: column-major, cuBLAS's view).
//
// Work split
//  - The problems travel by value in the kernel's argument (TcArgs, < 4 KiB): pointers, sizes,
//    leading dimensions, and the running sum of each problem's tile count. No host-to-device copy,
//    no allocation. Grid = total tiles; a block finds its problem by a binary search over the
//    running sums, then its tile (m0, n0) inside it, m fastest.
//  - Block tile BM x BN = 64 x 64 of C, 4 warps (128 threads) in 2 x 2, each warp 32 x 32 of C:
//    2 x 4 accumulator fragments (16 x 8, fp32). k advances BK = 32 at a time.
//  - Each k step stages op(A) (64 x 32) and op(B) (32 x 64) in shared memory as bf16 in the layout
//    of global memory (the contiguous dimension of the stored matrix stays contiguous, rows padded
//    by 8 elements), so the fragment loaders read a transposed operand by its strides, no copy.
//    The next step's tiles are fetched into registers while the warps multiply the current one.
//  - Global loads take 8 contiguous elements (16 bytes) at once where they lie inside the matrix
//    and are 16-byte aligned, element by element otherwise (ragged edges, odd leading dimensions);
//    elements outside the matrix (rows past m, columns past n, k past k) are zeros, which add
//    nothing to a product. Only elements inside C are written.
//  - Epilogue per element: v = alpha acc + beta C in fp32 (C not read when beta == 0, as cuBLAS);
//    an fp32 C stores v, a bf16 C stores v rounded once to nearest even.
// Deterministic: each C element is written by one block, every sum runs over k in a fixed order
// (k steps in order, mma's 16 products each), no atomics: results are bitwise reproducible.
// Speed: written on the simulator, not yet measured or tuned on a GPU (tile sizes are a first
// choice; no split-k, so a product with few tiles and a long k, a weight gradient, uses few SMs).
//
// The simulator (docs/simulator.md) checks device memory per 4-byte word, so two blocks writing the
// two halves of one word of a bf16 C count as a race there although a GPU stores 2 bytes exactly:
// with a bf16 C, keep ldc even and every problem's C 4-byte aligned (the model's C are row blocks
// of an even width).
#include "grouped_gemm.cuh"
#include "launch.cuh"
#include "mma.cuh"

#include <algorithm>
#include <cstdint>

namespace am::cuda {

namespace {

using mma::FragA;
using mma::FragB;
using mma::FragC;

constexpr int BM = 64, BN = 64, BK = 32, PAD = 8;  // PAD: 16 bytes of stagger per shared row
constexpr int kWarps = 4, kTcThreads = 32 * kWarps;
constexpr int WM = 32, WN = 32;  // a warp's part of the block tile (2 x 2 warps)
static_assert(BM == 2 * WM && BN == 2 * WN && kWarps == 4, "2 x 2 warps");
// One operand tile in shared memory, in uint4 (8 bf16): rows of BK + PAD or BM + PAD elements.
constexpr int kTileVecs = std::max(BK * (BM + PAD), BM*(BK + PAD)) / 8;
static_assert(BM == BN, "one shared tile size for A and B");

struct TcProblem {
  const uint16_t* a = nullptr;  // bf16 bits
  const uint16_t* b = nullptr;
  void* c = nullptr;
  int m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0;
};

struct TcArgs {
  TcProblem p[kMaxGroups];
  int tile_end[kMaxGroups];  // tiles of problems 0..i together
  uint64_t c_bf16 = 0;       // bit i: problem i's C is bf16 (else fp32)
  int count = 0;
  float alpha = 1.f, beta = 0.f;
};
static_assert(sizeof(TcArgs) <= 4096, "kernel arguments within 4 KiB");

// One operand's k-step tile in registers: of a column-major matrix (element (c, s) at src[c + s ld])
// the region c in [c0, c0 + CONT), s in [s0, s0 + STRD), zero outside [0, c_lim) x [0, s_lim).
// Thread x holds the runs of 8 contiguous elements numbered x, x + 128, ...
template <int CONT, int STRD>
struct Stage {
  static_assert(CONT % 8 == 0 && (CONT * STRD / 8) % kTcThreads == 0, "whole runs per thread");
  static constexpr int kRuns = CONT * STRD / 8 / kTcThreads;
  static constexpr int kRowVecs = (CONT + PAD) / 8;  // a shared row, in uint4
  uint4 v[kRuns];

  __device__ __forceinline__ void fetch(const uint16_t* __restrict__ src, int64_t ld, int c0, int s0, int c_lim,
                                        int s_lim) {
#pragma unroll
    for (int e = 0; e < kRuns; ++e) {
      const int idx = int(threadIdx.x) + e * kTcThreads;
      const int gc = c0 + 8 * (idx % (CONT / 8)), gs = s0 + idx / (CONT / 8);
      uint4 r = make_uint4(0, 0, 0, 0);
      if (gs < s_lim && gc < c_lim) {
        const uint16_t* p = src + int64_t(gs) * ld + gc;
        if (gc + 8 <= c_lim && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
          r = *reinterpret_cast<const uint4*>(p);
        } else {
          uint16_t x[8];
#pragma unroll
          for (int i = 0; i < 8; ++i) x[i] = gc + i < c_lim ? p[i] : uint16_t(0);
          r = make_uint4(mma::pack(x[0], x[1]), mma::pack(x[2], x[3]), mma::pack(x[4], x[5]), mma::pack(x[6], x[7]));
        }
      }
      v[e] = r;
    }
  }
  // dst: STRD rows of CONT + PAD elements; each thread writes whole 16-byte runs.
  __device__ __forceinline__ void store(uint4* dst) const {
#pragma unroll
    for (int e = 0; e < kRuns; ++e) {
      const int idx = int(threadIdx.x) + e * kTcThreads;
      dst[(idx / (CONT / 8)) * kRowVecs + idx % (CONT / 8)] = v[e];
    }
  }
};

// The problem that block `tile` works on: the first whose tiles end after it.
__device__ __forceinline__ int find_problem(const TcArgs& args, int tile) {
  int lo = 0, hi = args.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (tile < args.tile_end[mid]) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// One k step of a warp's 32 x 32 part of C: acc += op(A) rows wm.., op(B) columns wn.., from the
// shared tiles a16 (rows of SA elements) and b16 (rows of SB).
template <bool TA, bool TB, int SA, int SB>
__device__ __forceinline__ void multiply_step(FragC (&acc)[2][4], const uint16_t* a16, const uint16_t* b16, int wm,
                                              int wn, int lane) {
#pragma unroll
  for (int kk = 0; kk < BK; kk += 16) {
    FragA fa[2];
    FragB fb[4];
#pragma unroll
    for (int i = 0; i < 2; ++i) {  // rows wm + 16 i .. + 15, columns kk .. kk + 15 of op(A)
      const int r0 = wm + 16 * i;
      if (TA) {
        mma::load_a(fa[i], a16 + r0 * SA + kk, SA, 1, lane);
      } else {
        mma::load_a(fa[i], a16 + kk * SA + r0, 1, SA, lane);
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {  // rows kk .. kk + 15, columns wn + 8 j .. + 7 of op(B)
      const int c0 = wn + 8 * j;
      if (TB) {
        mma::load_b(fb[j], b16 + kk * SB + c0, SB, 1, lane);
      } else {
        mma::load_b(fb[j], b16 + c0 * SB + kk, 1, SB, lane);
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) mma::mma_bf16(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
  }
}

// The epilogue: C = alpha acc + beta C for the warp's elements inside C (rows r0.., columns c0..),
// an fp32 C stored as is, a bf16 C rounded once.
__device__ __forceinline__ void store_tile(const TcProblem& q, bool c16, float alpha, float beta,
                                           const FragC (&acc)[2][4], int r0, int c0, int lane) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int row = r0 + 16 * i + mma::c_row(lane, r), col = c0 + 8 * j + mma::c_col(lane, r);
        if (row >= q.m || col >= q.n) continue;
        const int64_t at = row + int64_t(col) * q.ldc;
        float v = alpha * acc[i][j].r[r];
        if (c16) {
          __nv_bfloat16* c = static_cast<__nv_bfloat16*>(q.c) + at;
          if (beta != 0.f) v += beta * __bfloat162float(*c);
          *c = __float2bfloat16_rn(v);
        } else {
          float* c = static_cast<float*>(q.c) + at;
          if (beta != 0.f) v += beta * *c;
          *c = v;
        }
      }
    }
  }
}

// C tiles of the problems in `args`; TA, TB: op(A) = A^T, op(B) = B^T.
template <bool TA, bool TB>
__global__ void __launch_bounds__(kTcThreads) grouped_gemm_tc_kernel(TcArgs args) {
  const int tile = int(blockIdx.x), lo = find_problem(args, tile);
  const TcProblem q = args.p[lo];
  const int t = tile - (lo > 0 ? args.tile_end[lo - 1] : 0), tiles_m = (q.m + BM - 1) / BM;
  const int m0 = (t % tiles_m) * BM, n0 = (t / tiles_m) * BN;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int wm = (warp & 1) * WM, wn = (warp >> 1) * WN;

  // op(A) (m x k): stored m x k (A[i + kk lda]) or, transposed, k x m (A[kk + i lda]);
  // op(B) (k x n): stored k x n (B[kk + j ldb]) or, transposed, n x k (B[j + kk ldb]).
  Stage<TA ? BK : BM, TA ? BM : BK> ra;
  Stage<TB ? BN : BK, TB ? BK : BN> rb;
  constexpr int SA = (TA ? BK : BM) + PAD, SB = (TB ? BN : BK) + PAD;  // shared row lengths
  auto fetch = [&](int k0) {
    if (TA) {
      ra.fetch(q.a, q.lda, k0, m0, q.k, q.m);
    } else {
      ra.fetch(q.a, q.lda, m0, k0, q.m, q.k);
    }
    if (TB) {
      rb.fetch(q.b, q.ldb, n0, k0, q.n, q.k);
    } else {
      rb.fetch(q.b, q.ldb, k0, n0, q.k, q.n);
    }
  };

  AM_SHARED(uint4, sa, [kTileVecs]);
  AM_SHARED(uint4, sb, [kTileVecs]);
  FragC acc[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) mma::zero(acc[i][j]);
  }

  fetch(0);
  for (int k0 = 0; k0 < q.k; k0 += BK) {
    __syncthreads();  // the previous step's fragments are read
    ra.store(sa);
    rb.store(sb);
    __syncthreads();
    if (k0 + BK < q.k) fetch(k0 + BK);  // in flight while the warps multiply
    multiply_step<TA, TB, SA, SB>(acc, reinterpret_cast<const uint16_t*>(sa), reinterpret_cast<const uint16_t*>(sb), wm,
                                  wn, lane);
  }
  store_tile(q, (args.c_bf16 >> lo) & 1u, args.alpha, args.beta, acc, m0 + wm, n0 + wn, lane);
}

void launch_chunk(bool ta, bool tb, const GemmProblem* probs, int count, float alpha, float beta) {
  TcArgs args;
  args.alpha = alpha;
  args.beta = beta;
  int tiles = 0;
  for (int i = 0; i < count; ++i) {
    const GemmProblem& g = probs[i];
    if (g.m <= 0 || g.n <= 0) continue;  // nothing to write
    AM_CHECK(g.k >= 0 && g.lda >= std::max(1, ta ? g.k : g.m) && g.ldb >= std::max(1, tb ? g.n : g.k) && g.ldc >= g.m,
             "gemm_grouped_tc: problem m {} n {} k {} lda {} ldb {} ldc {}", g.m, g.n, g.k, g.lda, g.ldb, g.ldc);
    AM_CHECK(g.c_type == CUDA_R_32F || g.c_type == CUDA_R_16BF, "gemm_grouped_tc: C of type {}", int(g.c_type));
    const int64_t t = int64_t((g.m + BM - 1) / BM) * ((g.n + BN - 1) / BN);
    AM_CHECK(tiles + t <= INT32_MAX, "gemm_grouped_tc: {} tiles in one call", tiles + t);
    TcProblem& q = args.p[args.count];
    q.a = static_cast<const uint16_t*>(g.a);
    q.b = static_cast<const uint16_t*>(g.b);
    q.c = g.c;
    q.m = g.m, q.n = g.n, q.k = g.k, q.lda = g.lda, q.ldb = g.ldb, q.ldc = g.ldc;
    if (g.c_type == CUDA_R_16BF) args.c_bf16 |= uint64_t(1) << args.count;
    tiles += int(t);
    args.tile_end[args.count++] = tiles;
  }
  if (tiles == 0) return;
  const dim3 grid{unsigned(tiles)}, block{unsigned(kTcThreads)};
  if (ta && tb) {
    launch<grouped_gemm_tc_kernel<true, true>>(grid, block, 0, compute_stream(), args);
  } else if (ta) {
    launch<grouped_gemm_tc_kernel<true, false>>(grid, block, 0, compute_stream(), args);
  } else if (tb) {
    launch<grouped_gemm_tc_kernel<false, true>>(grid, block, 0, compute_stream(), args);
  } else {
    launch<grouped_gemm_tc_kernel<false, false>>(grid, block, 0, compute_stream(), args);
  }
}

}  // namespace

void gemm_grouped_tc(cublasOperation_t ta, cublasOperation_t tb, const std::vector<GemmProblem>& problems, float alpha,
                     float beta) {
  const int total = static_cast<int>(problems.size());
  for (int first = 0; first < total; first += kMaxGroups) {
    launch_chunk(ta != CUBLAS_OP_N, tb != CUBLAS_OP_N, problems.data() + first, std::min(kMaxGroups, total - first),
                 alpha, beta);
  }
}

}  // namespace am::cuda

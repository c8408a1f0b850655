// attention_decode.cu: decode attention (Backend::attention_decode), one new query row against the
// first n positions of a KV cache, for the KV-cache decoder (src/model/decode.cpp). fp32 arithmetic;
// the CPU reference (src/cpu/ops_attention.cpp, attention_decode) computes in double.
//
// Design: one block of 256 threads per query head h (kv head h / group), three passes over the n
// cached positions, the block's shared memory holding q (hd floats), the n scores, and the
// partial outputs (256 floats):
//   1. scores: warp w takes positions w, w + 8, ...; lane l sums dims l, l + 32, ... of q.k_j in
//      order (fmaf), then a butterfly over the 32 lanes; s_j = scale * that.
//   2. max over the scores (exact in any order), then p_j = exp(s_j - max) in place and their sum
//      (each thread its strided positions in order, then CUB's fixed-order block reduction).
//   3. out: R = 256 / hd groups of hd threads; group r sums p_j v_j[c] over its contiguous chunk of
//      positions in order, then thread c adds the R partials in group order and divides by the sum.
// No atomics, a fixed order everywhere: the same inputs give the same bits. Work O(n hd) per head.
//
// bf16 storage: with out, q, k and v of one dtype the kernel is templated on it (loads widen
// exactly, the output is rounded once); other combinations, and BF16 with an odd head dim, run on
// fp32 copies (F32Copies).
#include "bf16_io.cuh"
#include "check.cuh"
#include "core/f32_copies.h"
#include "core/op_checks.h"
#include "launch.cuh"
#include "ops.cuh"
#include "row_reduce.cuh"

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace am::cuda {
namespace {

constexpr int kDecodeThreads = 256;  // 8 warps
constexpr int kDecodeMaxHeadDim = 256;

template <typename S>
__global__ void attn_decode_kernel(S* out, const S* q, const S* k, const S* v, int n, int hd, int group, int64_t kv_dim,
                                   float scale) {
  AM_DYNAMIC_SHARED(float, smem);
  float* qs = smem;                  // (hd)
  float* part = smem + hd;           // (kDecodeThreads): the partial outputs of pass 3
  float* p = part + kDecodeThreads;  // (n): scores, then probabilities
  const int h = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t col = int64_t(h / group) * hd;  // the kv head's columns in a cache row
  for (int i = tid; i < hd; i += kDecodeThreads) qs[i] = to_float(q[int64_t(h) * hd + i]);
  __syncthreads();

  // 1. scores
  for (int j = warp; j < n; j += kDecodeThreads / 32) {
    const S* kj = k + int64_t(j) * kv_dim + col;
    float acc = 0.f;
    for (int i = lane; i < hd; i += 32) acc = fmaf(qs[i], to_float(kj[i]), acc);
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) p[j] = scale * acc;
  }
  __syncthreads();

  // 2. softmax statistics
  float mx = -std::numeric_limits<float>::infinity();
  for (int j = tid; j < n; j += kDecodeThreads) mx = fmaxf(mx, p[j]);
  mx = block_allreduce<kDecodeThreads>(mx, MaxOp{});
  float sum = 0.f;
  for (int j = tid; j < n; j += kDecodeThreads) {
    const float e = expf(p[j] - mx);
    p[j] = e;
    sum += e;
  }
  sum = block_allreduce<kDecodeThreads>(sum, SumOp{});  // ends with a barrier: p is complete

  // 3. out = sum_j p_j v_j / sum
  const int groups = kDecodeThreads / hd, r = tid / hd, c = tid % hd;
  const int chunk = (n + groups - 1) / groups;
  if (r < groups) {
    float acc = 0.f;
    const int end = (r + 1) * chunk < n ? (r + 1) * chunk : n;
    for (int j = r * chunk; j < end; ++j) acc = fmaf(p[j], to_float(v[int64_t(j) * kv_dim + col + c]), acc);
    part[r * hd + c] = acc;
  }
  __syncthreads();
  if (tid < hd) {
    float o = 0.f;
    for (int g = 0; g < groups; ++g) o += part[g * hd + tid];
    out[int64_t(h) * hd + tid] = from_float<S>(o / sum);
  }
}

size_t decode_smem(int64_t hd, int64_t n) { return sizeof(float) * size_t(hd + kDecodeThreads + n); }

// Lets `kernel` use `bytes` of dynamic shared memory (above the default 48 KB when needed).
template <typename K>
void allow_decode_smem(K kernel, size_t bytes, int64_t n) {
  if (bytes <= 48 * 1024) return;
  int device = 0, optin = 0;
  AM_CUDA(cudaGetDevice(&device));
  AM_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (bytes > size_t(optin)) {
    throw UserError(fmt::format("attention_decode: {} cached positions need {} bytes of shared memory, the device "
                                "allows {}",
                                n, bytes, optin),
                    "sample with a shorter model.max_seq_len, or run.backend: cpu");
  }
  AM_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace

void attention_decode(Backend& be, Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n,
                      const AttnShape& s) {
  if (s.head_dim > kDecodeMaxHeadDim) {
    throw UserError(fmt::format("attention_decode: the CUDA kernel supports head dims up to {}, got {}",
                                kDecodeMaxHeadDim, s.head_dim),
                    "choose model.d_model / model.n_heads <= 256, or run.backend: cpu");
  }
  AM_CHECK(s.n_heads <= 65535 && n <= std::numeric_limits<int>::max(),
           "attention_decode: H={} n={} exceeds the kernel's grid limits", s.n_heads, n);
  const DType dt = out.dtype;
  // BF16 with an odd head dim: neighbouring heads' outputs would share 4-byte words, which the
  // simulator's per-word shadow takes for a race between blocks; fp32 copies then.
  const bool odd16 = dt == DType::BF16 && s.head_dim % 2 != 0;
  if (q.dtype != dt || k_cache.dtype != dt || v_cache.dtype != dt || odd16) {
    F32Copies f32(be, {Backend::wr(&out), &q, &k_cache, &v_cache});
    attention_decode(be, out, q, k_cache, v_cache, n, s);
    f32.narrow();
    return;
  }
  const size_t bytes = decode_smem(s.head_dim, n);
  const float scale = float(1.0 / std::sqrt(double(s.head_dim)));
  with_storage(dt, [&](auto tag) {
    using S = decltype(tag);
    allow_decode_smem(attn_decode_kernel<S>, bytes, n);
    launch<attn_decode_kernel<S>>(unsigned(s.n_heads), kDecodeThreads, bytes, compute_stream(), data_as<S>(out),
                                  data_as<const S>(q), data_as<const S>(k_cache), data_as<const S>(v_cache), int(n),
                                  int(s.head_dim), int(s.n_heads / s.n_kv_heads), s.kv_dim(), scale);
  });
}

}  // namespace am::cuda

// mma.cuh: the tensor cores' bf16 matrix multiply-accumulate for kernels, one warp at a time.
//
//   mma_bf16(d, a, b, c):  D (16 x 8, f32) = A (16 x 16, bf16) B (16 x 8, bf16) + C (16 x 8, f32)
//
// is mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80 and later). Every lane of the warp
// must call it together (converged), each with its own fragment registers. The fragments hold the
// matrices as the PTX ISA lays them out ("Matrix Fragments for mma.m16n8k16 with floating point
// type"); with g = lane >> 2 (groupID) and t = lane % 4 (threadID_in_group):
//   FragA, 4 registers of two bf16 (a0..a7, the even element in the lower half):
//     a0 a1: (g, 2t), (g, 2t+1)        a2 a3: (g+8, 2t), (g+8, 2t+1)
//     a4 a5: (g, 2t+8), (g, 2t+9)      a6 a7: (g+8, 2t+8), (g+8, 2t+9)          (row, col)
//   FragB, 2 registers (b0..b3):  b0 b1: (2t, g), (2t+1, g)   b2 b3: (2t+8, g), (2t+9, g)   (k, n)
//   FragC, 4 floats (c0..c3):     c0 c1: (g, 2t), (g, 2t+1)   c2 c3: (g+8, 2t), (g+8, 2t+1) (row, col)
// The loaders below read those elements from any strided bf16 tile (shared memory, usually), so a
// kernel can use a tile or its transpose as an operand without copying it. bf16 values are kept
// as their 16 bits (uint16_t), rounded from fp32 by to_bf16 (round to nearest even, as
// __float2bfloat16_rn and the CPU's am::bf16_round).
//
// On the GPU the product is inline PTX. On the simulator (cuda/sim/) it is a warp collective that
// gathers the 32 lanes' registers by the same layout and computes D with fp32 accumulation of the
// exact bf16 products (cuda/sim/mma.cpp; tests/cuda/test_cuda_mma.cpp checks the layout against
// the ISA's formulas on both).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace am::cuda::mma {

struct FragA {
  uint32_t r[4];
};
struct FragB {
  uint32_t r[2];
};
struct FragC {
  float r[4];
};

__device__ __forceinline__ uint16_t to_bf16(float x) {
  const __nv_bfloat16 h = __float2bfloat16_rn(x);
  uint16_t bits;
  static_assert(sizeof(h) == sizeof(bits), "bf16 is 16 bits");
  memcpy(&bits, &h, sizeof(bits));
  return bits;
}

__device__ __forceinline__ float from_bf16(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }

__device__ __forceinline__ uint32_t pack(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// Rows and columns of a lane's accumulator c_i (i = 0..3) in the 16 x 8 tile.
__device__ __forceinline__ int c_row(int lane, int i) { return (lane >> 2) + (i >= 2 ? 8 : 0); }
__device__ __forceinline__ int c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

// A (16 x 16): element (row, col) at p[row * rs + col * cs].
__device__ __forceinline__ void load_a(FragA& f, const uint16_t* p, int rs, int cs, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < 4; ++j) {  // register j: a_{2j}, a_{2j+1}
    const int row = g + ((j & 1) ? 8 : 0), col = 2 * t + ((j & 2) ? 8 : 0);
    const uint16_t* e = p + row * rs + col * cs;
    f.r[j] = pack(e[0], e[cs]);
  }
}

// B (16 x 8): element (k, n) at p[k * ks + n * ns].
__device__ __forceinline__ void load_b(FragB& f, const uint16_t* p, int ks, int ns, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < 2; ++j) {  // register j: b_{2j}, b_{2j+1}
    const uint16_t* e = p + (2 * t + 8 * j) * ks + g * ns;
    f.r[j] = pack(e[0], e[ks]);
  }
}

__device__ __forceinline__ void zero(FragC& f) {
#pragma unroll
  for (int i = 0; i < 4; ++i) f.r[i] = 0.f;
}

// C (16 x 8, f32): element (row, col) at p[row * ld + col].
__device__ __forceinline__ void load_c(FragC& f, const float* p, int ld, int lane) {
#pragma unroll
  for (int i = 0; i < 4; ++i) f.r[i] = p[c_row(lane, i) * ld + c_col(lane, i)];
}
__device__ __forceinline__ void store_c(float* p, int ld, const FragC& f, int lane) {
#pragma unroll
  for (int i = 0; i < 4; ++i) p[c_row(lane, i) * ld + c_col(lane, i)] = f.r[i];
}

// d = a b + c (d may be c), by the whole warp.
__device__ __forceinline__ void mma_bf16(FragC& d, const FragA& a, const FragB& b, const FragC& c) {
#if defined(AM_CUDA_SIM)
  ::am::sim::mma_bf16_m16n8k16(d.r, a.r, b.r, c.r);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d.r[0]), "=f"(d.r[1]), "=f"(d.r[2]), "=f"(d.r[3])
      : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]), "f"(c.r[0]), "f"(c.r[1]),
        "f"(c.r[2]), "f"(c.r[3]));
#elif defined(__CUDA_ARCH__)
  static_assert(__CUDA_ARCH__ >= 800, "mma_bf16 needs sm_80 or later");
#endif
}

}  // namespace am::cuda::mma

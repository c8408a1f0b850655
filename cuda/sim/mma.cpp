// The tensor cores' matrix multiply-accumulate on the simulator: one
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 of a warp (cuda/mma.cuh issues it through
// am::sim::mma_bf16_m16n8k16, a warp collective; scheduler.cpp calls this once all 32 lanes have
// arrived).
//
// The fragments are distributed over the lanes as the PTX ISA documents ("Matrix Fragments for
// mma.m16n8k16 with floating point type"), with groupID = lane >> 2 and t = lane % 4:
//   A (16 x 16, bf16, 4 registers a0..a7, the even element in the lower half of each register):
//     row = groupID for a0, a1, a4, a5, groupID + 8 for a2, a3, a6, a7;
//     col = 2 t + (i & 1) for a0..a3, 2 t + (i & 1) + 8 for a4..a7;
//   B (16 x 8, bf16, 2 registers b0..b3): row (k) = 2 t + (i & 1) for b0, b1, + 8 for b2, b3; col = groupID;
//   C, D (16 x 8, f32, c0..c3): row = groupID for c0, c1, groupID + 8 for c2, c3; col = 2 t + (i & 1).
//
// Arithmetic: every product of two bf16 values is exact in fp32 (8-bit significands); each
// D[r][n] is C[r][n] plus the 16 products added one by one in k order, rounded to fp32 at each
// step. The hardware adds the products in an order and with internal precision it does not
// document, so a GPU's D can differ from this in the last bits (as cuBLAS's sums do); the layout,
// which is what the simulator must get right, is exact.
#include "sim_internal.h"

#include <cmath>
#include <cstring>

namespace am::sim {

namespace {

float bf16_value(uint32_t reg, int half) {
  const uint32_t bits = (half ? reg >> 16 : reg & 0xffffu) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

}  // namespace

void mma_bf16_m16n8k16_warp(const MmaLane* const (&lanes)[32]) {
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaLane& L = *lanes[lane];
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 8; ++i) {  // a_i: register i / 2, half i % 2
      const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
      const int col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
      A[row][col] = bf16_value(L.a[i / 2], i & 1);
    }
    for (int i = 0; i < 4; ++i) {  // b_i
      const int row = 2 * t + (i & 1) + (i >= 2 ? 8 : 0);
      B[row][g] = bf16_value(L.b[i / 2], i & 1);
    }
    for (int i = 0; i < 4; ++i) C[i < 2 ? g : g + 8][2 * t + (i & 1)] = L.c[i];
  }
  float D[16][8];
  for (int r = 0; r < 16; ++r) {
    for (int n = 0; n < 8; ++n) {
      float acc = C[r][n];
      for (int k = 0; k < 16; ++k) acc = std::fma(A[r][k], B[k][n], acc);  // the product is exact
      D[r][n] = acc;
    }
  }
  for (int lane = 0; lane < 32; ++lane) {  // after every read: d may be c
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; ++i) lanes[lane]->d[i] = D[i < 2 ? g : g + 8][2 * t + (i & 1)];
  }
}

}  // namespace am::sim

// The tensor-core helper (cuda/mma.cuh) alone, through cuda/mma_probe.cu: on the GPU and on the
// simulator, each lane's fragment registers must hold exactly the elements the PTX ISA's tables
// for mma.m16n8k16 (.bf16 A and B, .f32 C and D) name, and the product must equal the CPU's.
// The table here is written from the ISA's formulas, independently of the helper and of the
// simulator (cuda/sim/mma.cpp), so that neither can share a layout mistake with the test.
#include "cuda_test_util.h"
#include "mma_probe.h"

#include "core/bf16.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using namespace am;

namespace {

// The PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type", .bf16 / .f32.
// groupID = laneid >> 2, threadID_in_group = laneid % 4.
struct RowCol {
  int row, col;
};
RowCol isa_a(int lane, int i) {  // a_i, i = 0..7
  const int group = lane >> 2, tig = lane % 4;
  const int row = (0 <= i && i < 2) || (4 <= i && i < 6) ? group : group + 8;
  const int col = i < 4 ? tig * 2 + (i & 0x1) : tig * 2 + (i & 0x1) + 8;
  return {row, col};
}
RowCol isa_b(int lane, int i) {  // b_i, i = 0..3: (row = k, col = n)
  const int group = lane >> 2, tig = lane % 4;
  const int row = i < 2 ? tig * 2 + (i & 0x1) : tig * 2 + (i & 0x1) + 8;
  return {row, group};
}
RowCol isa_c(int lane, int i) {  // c_i / d_i, i = 0..3
  const int group = lane >> 2, tig = lane % 4;
  return {i < 2 ? group : group + 8, tig * 2 + (i & 0x1)};
}

// Element e of a lane's bf16 registers: register e / 2, the lower half for even e.
float bf16_elem(const std::vector<uint32_t>& regs, int lane, int per_lane, int e) {
  const uint32_t r = regs[size_t(lane * per_lane + e / 2)];
  return bf16_bits_to_f32(static_cast<uint16_t>(e % 2 == 0 ? r & 0xffffu : r >> 16));
}

}  // namespace

TEST_CASE("cuda mma helper: fragments follow the PTX ISA layout for m16n8k16 bf16", "[cuda][mma]") {
  // Entries that name their position, exact in bf16 (8-bit significands hold 0..255):
  // A[r][c] = 16 r + c % 16, B[k][n] = 16 (k % 16) + n, C[r][n] = 1000 r + n.
  std::vector<uint16_t> a(16 * 32), b(32 * 16);
  std::vector<float> c(16 * 16);
  for (int r = 0; r < 16; ++r)
    for (int col = 0; col < 32; ++col) a[size_t(r * 32 + col)] = f32_to_bf16_bits(float(r * 16 + col % 16));
  for (int k = 0; k < 32; ++k)
    for (int n = 0; n < 16; ++n) b[size_t(k * 16 + n)] = f32_to_bf16_bits(float((k % 16) * 16 + n));
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 16; ++n) c[size_t(r * 16 + n)] = float(1000 * r + n);
  const cuda::MmaProbe p = cuda::run_mma_probe(a, b, c);

  for (int lane = 0; lane < 32; ++lane) {
    INFO("lane " << lane);
    for (int i = 0; i < 8; ++i) {
      INFO("a" << i);
      const RowCol e = isa_a(lane, i);
      CHECK(bf16_elem(p.a_regs, lane, 4, i) == float(e.row * 16 + e.col));
      CHECK(bf16_elem(p.a_t_regs, lane, 4, i) == float(e.col * 16 + e.row));  // element (r, c) = A[c][r]
    }
    for (int i = 0; i < 4; ++i) {
      INFO("b" << i);
      const RowCol e = isa_b(lane, i);
      CHECK(bf16_elem(p.b_regs, lane, 2, i) == float(e.row * 16 + e.col));
      CHECK(bf16_elem(p.b_t_regs, lane, 2, i) == float(e.col * 16 + e.row));  // element (k, n) = B[n][k]
    }
    for (int i = 0; i < 4; ++i) {
      INFO("c" << i);
      const RowCol e = isa_c(lane, i);
      CHECK(p.c_regs[size_t(lane * 4 + i)] == float(1000 * e.row + e.col));
    }
  }
}

TEST_CASE("cuda mma helper: D = A B + C equals the CPU product, in registers and stored", "[cuda][mma]") {
  // Random bf16 A (16 x 32), B (32 x 16), fp32 C: two k steps of 16 accumulate into C, for two
  // 8-wide column tiles. Products of bf16 values are exact; the reference adds them in double, the
  // tensor cores in fp32 in an undocumented order: |d - ref| <= 1e-6 (|C| + sum |a b|).
  const std::vector<float> ra = test::randn(16 * 32, 1), rb = test::randn(32 * 16, 2), c = test::randn(16 * 16, 3);
  std::vector<uint16_t> a(ra.size()), b(rb.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = f32_to_bf16_bits(ra[i]);
  for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_bf16_bits(rb[i]);
  const cuda::MmaProbe p = cuda::run_mma_probe(a, b, c);

  std::vector<double> ref(256), mag(256);
  for (int r = 0; r < 16; ++r) {
    for (int n = 0; n < 16; ++n) {
      double s = c[size_t(r * 16 + n)], m = std::abs(s);
      for (int k = 0; k < 32; ++k) {
        const double t = double(bf16_bits_to_f32(a[size_t(r * 32 + k)])) * bf16_bits_to_f32(b[size_t(k * 16 + n)]);
        s += t;
        m += std::abs(t);
      }
      ref[size_t(r * 16 + n)] = s;
      mag[size_t(r * 16 + n)] = m;
    }
  }
  for (int r = 0; r < 16; ++r) {
    for (int n = 0; n < 16; ++n) {
      INFO("D[" << r << "][" << n << "]");
      const size_t at = size_t(r * 16 + n);
      CHECK(std::abs(double(p.d[at]) - ref[at]) <= 1e-6 * mag[at]);
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) {
      INFO("lane " << lane << " d" << i);
      const RowCol e = isa_c(lane, i);
      const size_t at = size_t(e.row * 16 + e.col);
      CHECK(std::abs(double(p.d_regs[size_t(lane * 4 + i)]) - ref[at]) <= 1e-6 * mag[at]);
    }
  }
}

// A probe of the tensor-core helper (cuda/mma.cuh) for tests/cuda/test_cuda_mma.cpp: one warp
// loads fragments from known matrices and multiplies them, and the test checks what each lane
// held against the PTX ISA's layout formulas. The same probe runs on the GPU and on the simulator.
#pragma once

#include <cstdint>
#include <vector>

namespace am::cuda {

struct MmaProbe {
  // Per lane (32 rows): the registers after load_a / load_b / load_c of the first tile.
  std::vector<uint32_t> a_regs;    // (32, 4): A (16 x 32, row-major) columns 0..15
  std::vector<uint32_t> a_t_regs;  // (32, 4): the tile whose element (r, c) is A[c][r] (a transposed load)
  std::vector<uint32_t> b_regs;    // (32, 2): B (32 x 16, row-major [k][n]) rows 0..15, columns 0..7
  std::vector<uint32_t> b_t_regs;  // (32, 2): the tile whose element (k, n) is B[n][k] (n < 8, k < 16)
  std::vector<float> c_regs;       // (32, 4): C (16 x 16) columns 0..7
  std::vector<float> d_regs;       // (32, 4): D columns 0..7 after both k steps, as the lanes hold it
  std::vector<float> d;            // (16, 16): D = A B + C, stored by store_c
};

// a: 16 x 32 bf16 bits, b: 32 x 16 bf16 bits, c: 16 x 16 floats, all row-major.
MmaProbe run_mma_probe(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b, const std::vector<float>& c);

}  // namespace am::cuda

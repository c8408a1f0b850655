// The probe of cuda/mma.cuh (cuda/mma_probe.h): one warp, known matrices in, every lane's
// fragment registers and the product out.
#include "mma_probe.h"

#include "check.cuh"
#include "launch.cuh"
#include "mma.cuh"

namespace am::cuda {
namespace {

__global__ void mma_probe_kernel(uint32_t* a_regs, uint32_t* a_t_regs, uint32_t* b_regs, uint32_t* b_t_regs,
                                 float* c_regs, float* d_regs, float* d, const uint16_t* A, const uint16_t* B,
                                 const float* C) {
  const int lane = threadIdx.x;
  mma::FragA fa;
  mma::FragB fb;
  mma::FragC fc;
  mma::load_a(fa, A, 32, 1, lane);
  for (int j = 0; j < 4; ++j) a_regs[lane * 4 + j] = fa.r[j];
  mma::load_a(fa, A, 1, 32, lane);
  for (int j = 0; j < 4; ++j) a_t_regs[lane * 4 + j] = fa.r[j];
  mma::load_b(fb, B, 16, 1, lane);
  for (int j = 0; j < 2; ++j) b_regs[lane * 2 + j] = fb.r[j];
  mma::load_b(fb, B, 1, 16, lane);
  for (int j = 0; j < 2; ++j) b_t_regs[lane * 2 + j] = fb.r[j];
  mma::load_c(fc, C, 16, lane);
  for (int i = 0; i < 4; ++i) c_regs[lane * 4 + i] = fc.r[i];

  for (int nt = 0; nt < 2; ++nt) {  // D[:, 8 nt : 8 nt + 8] = C + A[:, 0:16] B[0:16] + A[:, 16:32] B[16:32]
    mma::FragC acc;
    mma::load_c(acc, C + 8 * nt, 16, lane);
    for (int kt = 0; kt < 2; ++kt) {
      mma::load_a(fa, A + 16 * kt, 32, 1, lane);
      mma::load_b(fb, B + 16 * kt * 16 + 8 * nt, 16, 1, lane);
      mma::mma_bf16(acc, fa, fb, acc);
    }
    if (nt == 0) {
      for (int i = 0; i < 4; ++i) d_regs[lane * 4 + i] = acc.r[i];
    }
    mma::store_c(d + 8 * nt, 16, acc, lane);
  }
}

template <typename T>
T* upload(const std::vector<T>& h) {
  T* p = nullptr;
  AM_CUDA(cudaMalloc(reinterpret_cast<void**>(&p), sizeof(T) * h.size()));
  AM_CUDA(cudaMemcpy(p, h.data(), sizeof(T) * h.size(), cudaMemcpyHostToDevice));
  return p;
}
template <typename T>
T* device_array(size_t n) {
  T* p = nullptr;
  AM_CUDA(cudaMalloc(reinterpret_cast<void**>(&p), sizeof(T) * n));
  return p;
}
template <typename T>
std::vector<T> download_and_free(T* p, size_t n) {
  std::vector<T> h(n);
  AM_CUDA(cudaMemcpy(h.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost));
  AM_CUDA(cudaFree(p));
  return h;
}

}  // namespace

MmaProbe run_mma_probe(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b, const std::vector<float>& c) {
  AM_CHECK(a.size() == 16 * 32 && b.size() == 32 * 16 && c.size() == 16 * 16, "run_mma_probe: bad matrix sizes");
  uint16_t* A = upload(a);
  uint16_t* B = upload(b);
  float* C = upload(c);
  uint32_t *ar = device_array<uint32_t>(128), *atr = device_array<uint32_t>(128);
  uint32_t *br = device_array<uint32_t>(64), *btr = device_array<uint32_t>(64);
  float *cr = device_array<float>(128), *dr = device_array<float>(128), *d = device_array<float>(256);
  launch<mma_probe_kernel>(1, 32, 0, 0, ar, atr, br, btr, cr, dr, d, A, B, C);
  MmaProbe out;
  out.a_regs = download_and_free(ar, 128);
  out.a_t_regs = download_and_free(atr, 128);
  out.b_regs = download_and_free(br, 64);
  out.b_t_regs = download_and_free(btr, 64);
  out.c_regs = download_and_free(cr, 128);
  out.d_regs = download_and_free(dr, 128);
  out.d = download_and_free(d, 256);
  AM_CUDA(cudaFree(A));
  AM_CUDA(cudaFree(B));
  AM_CUDA(cudaFree(C));
  return out;
}

}  // namespace am::cuda

// grouped_gemm.cu: the experts' GEMMs as one cublasGemmGroupedBatchedEx per call (cuBLAS 12.5+;
// the simulator implements it on OpenBLAS, cuda/sim/cublas.cpp). See grouped_gemm.cuh.
#include "grouped_gemm.cuh"
#include "launch.cuh"

#include <algorithm>

namespace am::cuda {

namespace {

// The A, B and C pointers of up to kMaxGroups problems, passed by value as kernel arguments.
struct PointerPack {
  const void* p[3 * kMaxGroups];
  int count;  // problems
};

// dst[0..count) = A pointers, dst[count..2 count) = B, dst[2 count..3 count) = C.
__global__ void write_pointers_kernel(void** dst, PointerPack pack) {
  for (int i = threadIdx.x; i < 3 * pack.count; i += blockDim.x) dst[i] = const_cast<void*>(pack.p[i]);
}

void gemm_chunk(Backend& be, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                const GemmProblem* probs, int count, cudaDataType ab_type, float alpha, float beta) {
  PointerPack pack{};
  pack.count = count;
  std::vector<cublasOperation_t> tas(count, ta), tbs(count, tb);
  std::vector<int> m(count), n(count), k(count), lda(count), ldb(count), ldc(count), sizes(count, 1);
  std::vector<float> alphas(count, alpha), betas(count, beta);
  for (int i = 0; i < count; ++i) {
    const GemmProblem& q = probs[i];
    pack.p[i] = q.a;
    pack.p[count + i] = q.b;
    pack.p[2 * count + i] = q.c;
    m[i] = q.m, n[i] = q.n, k[i] = q.k, lda[i] = q.lda, ldb[i] = q.ldb, ldc[i] = q.ldc;
  }
  Buffer ptrs = be.alloc(sizeof(void*) * 3 * static_cast<size_t>(count));
  void** dev = static_cast<void**>(ptrs.get());
  launch<write_pointers_kernel>(1, 128, 0, compute_stream(), dev, pack);
  AM_CUBLAS(cublasGemmGroupedBatchedEx(handle, tas.data(), tbs.data(), m.data(), n.data(), k.data(), alphas.data(), dev,
                                       ab_type, lda.data(), dev + count, ab_type, ldb.data(), betas.data(),
                                       dev + 2 * count, CUDA_R_32F, ldc.data(), count, sizes.data(),
                                       CUBLAS_COMPUTE_32F));
}

}  // namespace

void gemm_grouped(Backend& be, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                  const std::vector<GemmProblem>& problems, cudaDataType ab_type, float alpha, float beta) {
  for (const GemmProblem& q : problems) {
    AM_CHECK(q.c_type == CUDA_R_32F, "gemm_grouped: C of type {}", int(q.c_type));
  }
  const int total = static_cast<int>(problems.size());
  for (int first = 0; first < total; first += kMaxGroups) {
    gemm_chunk(be, handle, ta, tb, problems.data() + first, std::min(kMaxGroups, total - first), ab_type, alpha, beta);
  }
}

void gemm_each(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
               const std::vector<GemmProblem>& problems, float alpha, float beta) {
  for (const GemmProblem& q : problems) {
    AM_CUBLAS(cublasGemmEx(handle, ta, tb, q.m, q.n, q.k, &alpha, q.a, CUDA_R_16BF, q.lda, q.b, CUDA_R_16BF, q.ldb,
                           &beta, q.c, q.c_type, q.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

bool grouped_kernel_pays(const std::vector<GemmProblem>& problems) {
  for (const GemmProblem& q : problems) {
    if (double(q.m) * double(q.n) * double(q.k) > kGroupedKernelMaxMacs) return false;
  }
  return true;
}

}  // namespace am::cuda

// The simulator's cuBLAS: the two GEMMs the CUDA backend calls, on OpenBLAS, with cuBLAS's
// column-major conventions (op(A) is m x k, op(B) k x n, C m x n, leading dimensions checked).
//  - cublasSgemm: fp32 SGEMM.
//  - cublasGemmEx, CUBLAS_COMPUTE_32F, with bf16 A and B and a bf16 or fp32 C, or fp32 A, B, C
//    (cuBLAS's other combinations are refused, gemm_ex_types_ok): the operands widened to fp32
//    (exact) and one SGEMM, so every product is the fp32 product of the operands and the sums are
//    fp32, as on the GPU (up to summation order); a bf16 C is computed as fp32 alpha acc + beta C
//    and rounded once (nearest even), as cuBLAS does.
//  - cublasGemmGroupedBatchedEx (the experts' grouped GEMMs): fp32 A, B, C or bf16 A and B with
//    fp32 C, CUBLAS_COMPUTE_32F; host arrays of sizes, leading dimensions, alpha and beta (host
//    pointer mode), device arrays of A, B, C pointers read when the call runs; each problem one
//    SGEMM as above.
// Each call is one operation on the handle's stream; the memory checker sees exactly the elements
// a GEMM reads and writes (C is read only when beta != 0).
#include "sim_internal.h"

#include <cblas.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <fmt/format.h>

#include <cstring>
#include <vector>

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

using am::sim::runtime_access;

// Bytes a column-major rows x cols matrix with leading dimension ld spans.
size_t span_bytes(int rows, int cols, int ld, size_t elem) {
  if (rows == 0 || cols == 0) return 0;
  return (size_t(cols - 1) * size_t(ld) + size_t(rows)) * elem;
}

cublasStatus_t check_dims(const char* what, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda,
                          int ldb, int ldc) {
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m) ||
      (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) {
    std::fprintf(stderr, "[cuda-sim] %s: invalid m %d n %d k %d lda %d ldb %d ldc %d\n", what, m, n, k, lda, ldb, ldc);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}

void gemm_f32(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
              tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

std::vector<float> widen(const __nv_bfloat16* p, size_t count) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = __bfloat162float(p[i]);
  return out;
}

// count elements of a GEMM operand of type t (CUDA_R_16BF or CUDA_R_32F) as fp32 (exact).
std::vector<float> as_f32(const void* p, cudaDataType t, size_t count) {
  if (t == CUDA_R_16BF) return widen(static_cast<const __nv_bfloat16*>(p), count);
  const auto* f = static_cast<const float*>(p);
  return std::vector<float>(f, f + count);
}

// cublasGemmEx's type combinations under CUBLAS_COMPUTE_32F (scale type fp32) that the backend
// uses, from cuBLAS's table for cublasGemmEx: A and B of one type; bf16 A/B with a bf16 or fp32 C;
// fp32 A/B/C. cuBLAS also takes fp16 and int8 rows of that table (not simulated: unused) and
// refuses every mix it lacks (bf16 with fp32 operands, fp32 A/B with a bf16 C) with
// CUBLAS_STATUS_NOT_SUPPORTED, as the simulator does.
bool gemm_ex_types_ok(cudaDataType a, cudaDataType b, cudaDataType c, cublasComputeType_t compute) {
  if (compute != CUBLAS_COMPUTE_32F || a != b) return false;
  if (a == CUDA_R_16BF) return c == CUDA_R_16BF || c == CUDA_R_32F;
  return a == CUDA_R_32F && c == CUDA_R_32F;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* stream) {
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "CUBLAS_STATUS (simulator: unexpected)";
  }
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  if (auto st = check_dims("cublasSgemm", ta, tb, m, n, k, lda, ldb, ldc); st != CUBLAS_STATUS_SUCCESS) return st;
  const float al = *alpha, be = *beta;  // host pointer mode
  am::sim::enqueue(handle->stream, "cublasSgemm", [=] {
    const char* what = "cublasSgemm";
    if (k > 0 && al != 0) {
      runtime_access(A, span_bytes(ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, 4), false, true, what);
      runtime_access(B, span_bytes(tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, 4), false, true, what);
    }
    if (be != 0) runtime_access(C, span_bytes(m, n, ldc, 4), false, true, what);
    runtime_access(C, span_bytes(m, n, ldc, 4), true, false, what);
    am::sim::ArenaOpen open;
    gemm_f32(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc);
  });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!gemm_ex_types_ok(Atype, Btype, Ctype, compute)) {
    std::fprintf(stderr,
                 "[cuda-sim] cublasGemmEx: A %d B %d C %d compute %d: the simulated combinations are bf16 A and B "
                 "with a bf16 or fp32 C, and fp32 A, B, C, all with CUBLAS_COMPUTE_32F\n",
                 int(Atype), int(Btype), int(Ctype), int(compute));
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (auto st = check_dims("cublasGemmEx", ta, tb, m, n, k, lda, ldb, ldc); st != CUBLAS_STATUS_SUCCESS) return st;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const size_t ab_elem = Atype == CUDA_R_16BF ? 2 : 4, c_elem = Ctype == CUDA_R_16BF ? 2 : 4;
  am::sim::enqueue(handle->stream, "cublasGemmEx", [=] {
    const char* what = "cublasGemmEx";
    const size_t a_bytes = span_bytes(ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, ab_elem);
    const size_t b_bytes = span_bytes(tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, ab_elem);
    const size_t c_bytes = span_bytes(m, n, ldc, c_elem);
    if (k > 0 && al != 0) {
      runtime_access(A, a_bytes, false, true, what);
      runtime_access(B, b_bytes, false, true, what);
    }
    if (be != 0) runtime_access(C, c_bytes, false, true, what);
    runtime_access(C, c_bytes, true, false, what);
    am::sim::ArenaOpen open;
    const std::vector<float> a32 = as_f32(A, Atype, a_bytes / ab_elem), b32 = as_f32(B, Btype, b_bytes / ab_elem);
    if (Ctype == CUDA_R_32F) {
      gemm_f32(ta, tb, m, n, k, al, a32.data(), lda, b32.data(), ldb, be, static_cast<float*>(C), ldc);
      return;
    }
    // bf16 C: alpha acc + beta C in fp32 (C widened), rounded once to bf16 (nearest even); only the
    // m x n entries are written, not the padding between columns.
    auto* c16 = static_cast<__nv_bfloat16*>(C);
    std::vector<float> c32(c_bytes / 2, 0.f);
    if (be != 0) c32 = widen(c16, c_bytes / 2);
    gemm_f32(ta, tb, m, n, k, al, a32.data(), lda, b32.data(), ldb, be, c32.data(), ldc);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) c16[size_t(j) * ldc + i] = __float2bfloat16_rn(c32[size_t(j) * ldc + i]);
  });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmGroupedBatchedEx(cublasHandle_t handle, const cublasOperation_t transa_array[],
                                          const cublasOperation_t transb_array[], const int m_array[],
                                          const int n_array[], const int k_array[], const void* alpha_array,
                                          const void* const Aarray[], cudaDataType_t Atype, const int lda_array[],
                                          const void* const Barray[], cudaDataType_t Btype, const int ldb_array[],
                                          const void* beta_array, void* const Carray[], cudaDataType_t Ctype,
                                          const int ldc_array[], int group_count, const int group_size[],
                                          cublasComputeType_t compute) {
  // cuBLAS supports, under CUBLAS_COMPUTE_32F, fp32 A/B/C and bf16 (or fp16) A/B with a C of the
  // same type -- not bf16 A/B with an fp32 C, which cublasGemmEx allows. The simulator implements
  // fp32 alone and refuses the rest, as cuBLAS refuses what it does not support.
  const bool f32 = Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F;
  if (!f32 || compute != CUBLAS_COMPUTE_32F) {
    std::fprintf(stderr,
                 "[cuda-sim] cublasGemmGroupedBatchedEx: only fp32 A, B and C with "
                 "CUBLAS_COMPUTE_32F are simulated (cuBLAS has no bf16 A/B with fp32 C here)\n");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (group_count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  struct Problem {
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
  };
  std::vector<Problem> problems;  // the host arrays are read at the call, as cuBLAS does
  for (int g = 0; g < group_count; ++g) {
    if (group_size[g] < 0) return CUBLAS_STATUS_INVALID_VALUE;
    const Problem q{transa_array[g],
                    transb_array[g],
                    m_array[g],
                    n_array[g],
                    k_array[g],
                    lda_array[g],
                    ldb_array[g],
                    ldc_array[g],
                    static_cast<const float*>(alpha_array)[g],
                    static_cast<const float*>(beta_array)[g]};
    if (auto st = check_dims("cublasGemmGroupedBatchedEx", q.ta, q.tb, q.m, q.n, q.k, q.lda, q.ldb, q.ldc);
        st != CUBLAS_STATUS_SUCCESS) {
      return st;
    }
    for (int j = 0; j < group_size[g]; ++j) problems.push_back(q);
  }
  const size_t elem = 4;
  am::sim::enqueue(handle->stream, "cublasGemmGroupedBatchedEx", [=] {
    const char* what = "cublasGemmGroupedBatchedEx";
    const size_t count = problems.size();
    if (count == 0) return;
    runtime_access(Aarray, sizeof(void*) * count, false, true, what);
    runtime_access(Barray, sizeof(void*) * count, false, true, what);
    runtime_access(Carray, sizeof(void*) * count, false, true, what);
    std::vector<const void*> as(count), bs(count);
    std::vector<void*> cs(count);
    {
      am::sim::ArenaOpen open;  // the pointer arrays live in device memory
      for (size_t i = 0; i < count; ++i) as[i] = Aarray[i], bs[i] = Barray[i], cs[i] = Carray[i];
    }
    for (size_t i = 0; i < count; ++i) {
      const Problem& q = problems[i];
      const void* A = as[i];
      const void* B = bs[i];
      float* c = static_cast<float*>(cs[i]);
      const size_t a_bytes = span_bytes(q.ta == CUBLAS_OP_N ? q.m : q.k, q.ta == CUBLAS_OP_N ? q.k : q.m, q.lda, elem);
      const size_t b_bytes = span_bytes(q.tb == CUBLAS_OP_N ? q.k : q.n, q.tb == CUBLAS_OP_N ? q.n : q.k, q.ldb, elem);
      if (q.k > 0 && q.alpha != 0) {
        runtime_access(A, a_bytes, false, true, what);
        runtime_access(B, b_bytes, false, true, what);
      }
      if (q.beta != 0) runtime_access(c, span_bytes(q.m, q.n, q.ldc, 4), false, true, what);
      runtime_access(c, span_bytes(q.m, q.n, q.ldc, 4), true, false, what);
      am::sim::ArenaOpen open;
      gemm_f32(q.ta, q.tb, q.m, q.n, q.k, q.alpha, static_cast<const float*>(A), q.lda, static_cast<const float*>(B),
               q.ldb, q.beta, c, q.ldc);
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

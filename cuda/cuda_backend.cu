// The CUDA backend: device memory, cuBLAS GEMMs (row-major through the column-major API) and the
// element-wise kernels of elementwise.cu. Ops without a kernel yet throw a UserError naming the op.
#include "check.cuh"
#include "cuda_backend.h"
#include "elementwise.cuh"

#include <cmath>

namespace am {
namespace {

[[noreturn]] void not_yet(const char* op) {
  throw UserError(fmt::format("the CUDA backend has no kernel for '{}' yet", op),
                  "use run.backend: cpu (or auto, which picks the CPU until the CUDA backend is complete)");
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(DType dtype) : dtype_(dtype) {
    if (dtype != DType::F32) throw UserError("the CUDA backend runs fp32 for now (run.precision: fp32)");
    AM_CUDA(cudaGetDevice(&device_));
    AM_CUDA(cudaGetDeviceProperties(&props_, device_));
    AM_CUBLAS(cublasCreate(&cublas_));
    scratch_ = alloc(sizeof(double) * cuda::kSumSquaresBlocks);
  }
  ~CudaBackend() override { cublasDestroy(cublas_); }

  std::string name() const override { return "cuda"; }
  DType dtype() const override { return dtype_; }
  std::string describe() const override {
    return fmt::format("cuda, device {} ({}, sm_{}{}, {:.1f} GiB), {}", device_, props_.name, props_.major,
                       props_.minor, props_.totalGlobalMem / 1073741824.0, dtype_name(dtype_));
  }

  Buffer alloc(size_t bytes) override {
    void* p = nullptr;
    AM_CUDA(cudaMalloc(&p, bytes > 0 ? bytes : 1));
    return Buffer(p, bytes, [](void* q) { cudaFree(q); });
  }
  void upload(Tensor dst, const void* host) override {
    AM_CUDA(cudaMemcpy(dst.data, host, dst.nbytes(), cudaMemcpyHostToDevice));
  }
  void download(void* host, Tensor src) override {
    AM_CUDA(cudaMemcpy(host, src.data, src.nbytes(), cudaMemcpyDeviceToHost));
  }
  void zero(Tensor t) override { AM_CUDA(cudaMemset(t.data, 0, t.nbytes())); }
  void copy(Tensor dst, Tensor src) override {
    AM_CHECK(dst.dtype == src.dtype && dst.numel() == src.numel(), "copy {} <- {}", dst.shape_str(), src.shape_str());
    AM_CUDA(cudaMemcpy(dst.data, src.data, dst.nbytes(), cudaMemcpyDeviceToDevice));
  }
  void synchronize() override { AM_CUDA(cudaDeviceSynchronize()); }

  void matmul(Tensor c, Tensor a, bool ta, Tensor b, bool tb, double alpha, double beta) override {
    const int64_t M = ta ? a.dim(1) : a.dim(0), K = ta ? a.dim(0) : a.dim(1);
    const int64_t N = tb ? b.dim(0) : b.dim(1), Kb = tb ? b.dim(1) : b.dim(0);
    AM_CHECK(a.ndim == 2 && b.ndim == 2 && c.ndim == 2 && K == Kb && c.dim(0) == M && c.dim(1) == N,
             "matmul shapes c {} a {}{} b {}{}", c.shape_str(), a.shape_str(), ta ? "^T" : "",
             b.shape_str(), tb ? "^T" : "");
    if (M == 0 || N == 0) return;
    const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
    AM_CUBLAS(cublasSgemm(cublas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                          static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &al,
                          b.as<float>(), static_cast<int>(b.dim(1)), a.as<float>(),
                          static_cast<int>(a.dim(1)), &be, c.as<float>(), static_cast<int>(N)));
  }
  void add(Tensor out, Tensor a, Tensor b) override {
    AM_CHECK(out.numel() == a.numel() && a.numel() == b.numel(), "add sizes");
    cuda::add_f32(out.as<float>(), a.as<float>(), b.as<float>(), out.numel());
  }
  void axpy(Tensor y, Tensor x, double alpha) override {
    AM_CHECK(y.numel() == x.numel(), "axpy sizes");
    cuda::axpy_f32(y.as<float>(), x.as<float>(), static_cast<float>(alpha), y.numel());
  }
  void scale(Tensor x, double s) override { cuda::scale_f32(x.as<float>(), static_cast<float>(s), x.numel()); }
  double sum_squares(Tensor x) override {
    return cuda::sum_squares_f32(x.as<float>(), x.numel(), static_cast<double*>(scratch_.get()));
  }
  void adamw_update(Tensor p, Tensor g, Tensor m, Tensor v, const AdamWStep& s) override {
    AM_CHECK(p.numel() == g.numel() && p.numel() == m.numel() && p.numel() == v.numel(), "adamw sizes");
    const float bc1 = static_cast<float>(1.0 - std::pow(s.beta1, double(s.step)));
    const float bc2 = static_cast<float>(1.0 - std::pow(s.beta2, double(s.step)));
    cuda::adamw_f32(p.as<float>(), g.as<float>(), m.as<float>(), v.as<float>(), p.numel(),
                    static_cast<float>(s.lr), static_cast<float>(s.beta1), static_cast<float>(s.beta2),
                    static_cast<float>(s.eps), static_cast<float>(s.weight_decay),
                    static_cast<float>(s.grad_scale), bc1, bc2);
  }

  // ---- not implemented yet (issue: CUDA backend) ----
  void embedding_forward(Tensor, Tensor, Tensor) override { not_yet("embedding_forward"); }
  void embedding_backward(Tensor, Tensor, Tensor) override { not_yet("embedding_backward"); }
  void rmsnorm_forward(Tensor, Tensor, Tensor, Tensor, double) override { not_yet("rmsnorm_forward"); }
  void rmsnorm_backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor) override { not_yet("rmsnorm_backward"); }
  void rope_forward(Tensor, const AttnShape&, double) override { not_yet("rope_forward"); }
  void rope_backward(Tensor, const AttnShape&, double) override { not_yet("rope_backward"); }
  void attention_forward(Tensor, Tensor, Tensor, const AttnShape&) override { not_yet("attention_forward"); }
  void attention_backward(Tensor, Tensor, Tensor, Tensor, Tensor, const AttnShape&) override {
    not_yet("attention_backward");
  }
  void silu_forward(Tensor, Tensor) override { not_yet("silu_forward"); }
  void silu_backward(Tensor, Tensor, Tensor) override { not_yet("silu_backward"); }
  void swiglu_forward(Tensor, Tensor, Tensor) override { not_yet("swiglu_forward"); }
  void swiglu_backward(Tensor, Tensor, Tensor, Tensor, Tensor) override { not_yet("swiglu_backward"); }
  void cross_entropy_forward(Tensor, Tensor, Tensor) override { not_yet("cross_entropy_forward"); }
  void cross_entropy_forward_backward(Tensor, Tensor, Tensor, double) override {
    not_yet("cross_entropy_forward_backward");
  }
  void softmax_rows(Tensor, Tensor) override { not_yet("softmax_rows"); }
  void softmax_rows_backward(Tensor, Tensor, Tensor) override { not_yet("softmax_rows_backward"); }
  void logsumexp_rows(Tensor, Tensor) override { not_yet("logsumexp_rows"); }
  void axpy_rows(Tensor, Tensor, Tensor, double) override { not_yet("axpy_rows"); }
  std::vector<double> column_sums(Tensor) override { not_yet("column_sums"); }
  void add_to_rows(Tensor, const std::vector<double>&) override { not_yet("add_to_rows"); }
  void topk_select(Tensor, Tensor, Tensor, Tensor, int, int) override { not_yet("topk_select"); }
  void topk_select_backward(Tensor, Tensor, Tensor, Tensor, int) override { not_yet("topk_select_backward"); }
  void topp_select(Tensor, Tensor, Tensor, double, bool) override { not_yet("topp_select"); }
  void topp_select_backward(Tensor, Tensor, Tensor, Tensor, Tensor, bool) override {
    not_yet("topp_select_backward");
  }
  void expert_choice_select(Tensor, Tensor, Tensor, int64_t, int64_t) override { not_yet("expert_choice_select"); }
  void expert_choice_select_backward(Tensor, Tensor, Tensor) override { not_yet("expert_choice_select_backward"); }
  void capacity_route(Tensor, Tensor, Tensor, int, int64_t) override { not_yet("capacity_route"); }
  SlotStats slot_stats(Tensor, int, int) override { not_yet("slot_stats"); }
  void block_norms(Tensor, Tensor, int, NormKind) override { not_yet("block_norms"); }
  void block_norms_backward(Tensor, Tensor, Tensor, Tensor, int, NormKind) override {
    not_yet("block_norms_backward");
  }
  void gather_blocks(Tensor, Tensor, Tensor, Tensor) override { not_yet("gather_blocks"); }
  void scatter_blocks_add(Tensor, Tensor, Tensor, Tensor) override { not_yet("scatter_blocks_add"); }
  void broadcast_columns(Tensor, Tensor, int64_t) override { not_yet("broadcast_columns"); }
  void copy_columns(Tensor, Tensor, int64_t) override { not_yet("copy_columns"); }
  double entropy_sum(Tensor) override { not_yet("entropy_sum"); }
  void entropy_backward(Tensor, Tensor, double) override { not_yet("entropy_backward"); }
  int64_t route_build(Tensor, Tensor, std::vector<int64_t>&, Tensor, int) override { not_yet("route_build"); }
  void gather_rows(Tensor, Tensor, Tensor, int) override { not_yet("gather_rows"); }
  void combine(Tensor, Tensor, Tensor, Tensor) override { not_yet("combine"); }
  void combine_backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor) override { not_yet("combine_backward"); }
  void scatter_rows_add(Tensor, Tensor, Tensor) override { not_yet("scatter_rows_add"); }

 private:
  DType dtype_;
  int device_ = 0;
  cudaDeviceProp props_{};
  cublasHandle_t cublas_ = nullptr;
  Buffer scratch_;
};

}  // namespace

bool cuda_device_available() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" / "no device" error
    return false;
  }
  return n > 0;
}

bool cuda_backend_complete() { return false; }

std::unique_ptr<Backend> make_cuda_backend(DType dtype) { return std::make_unique<CudaBackend>(dtype); }

}  // namespace am

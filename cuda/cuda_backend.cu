// The CUDA backend: device memory, cuBLAS GEMMs (row-major through the column-major API; bf16
// operands in mixed precision), the element-wise kernels of elementwise.cu, and every other op
// forwarded to the kernel families of ops.cuh. Backend (core/backend.h) has checked every op's
// arguments before its `_impl` here runs; the overrides of the composites rmsnorm_residual_forward
// and cross_entropy_forward_backward are fused kernels (dense.cu, rows.cu).
#include "check.cuh"
#include "core/caching_allocator.h"
#include "cuda_backend.h"
#include "elementwise.cuh"
#include "grouped_gemm.cuh"
#include "ops.cuh"
#include "step.cuh"
#include "stream.cuh"

#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>
#ifdef AM_CUDA_SIM
#include "am_sim/sim.h"
#endif

namespace am {
namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend(DType dtype, bool bf16_matmul) : dtype_(dtype) {
    if (dtype != DType::F32) throw UserError("the CUDA backend runs run.precision fp32 or bf16");
    bf16_matmul_ = bf16_matmul;
    AM_CUDA(cudaGetDevice(&device_));
    AM_CUDA(cudaGetDeviceProperties(&props_, device_));
    AM_CUBLAS(cublasCreate(&cublas_));
    AM_CUBLAS(cublasSetStream(cublas_, cuda::compute_stream()));
    scratch_ = alloc(sizeof(double) * cuda::kSumSquaresBlocks);
    update_flag_ = alloc(sizeof(int));
    clear_update_flag();
    multi_flag_ = alloc(sizeof(int));
    cuda::fill_bytes(multi_flag_.get(), 0x7f, sizeof(int));  // cuda::kNoTag
  }
  ~CudaBackend() override { cublasDestroy(cublas_); }

  std::string name() const override { return "cuda"; }
  DType dtype() const override { return dtype_; }
  std::string device_name() const override { return props_.name; }
  std::string describe() const override {
    return fmt::format("cuda, device {} ({}, sm_{}{}, {:.1f} GiB), {}{}", device_, props_.name, props_.major,
                       props_.minor, props_.totalGlobalMem / 1073741824.0, dtype_name(dtype_),
                       bf16_matmul_ ? " with bf16 matmuls (fp32 accumulate)" : "");
  }

  // Through the caching allocator: ops allocate scratch per call, and cudaFree would synchronise
  // the device each time. Everything runs on the compute stream (stream.cuh), so reuse is ordered.
  Buffer alloc(size_t bytes) override {
    void* p = cache_.allocate(bytes);
    if (!p) {
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw UserError(fmt::format("out of GPU memory allocating {:.2f} GiB ({:.2f} GiB free of {:.2f})",
                                  bytes / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0),
                      "lower train.micro_batch_size or data.seq_len, or use expert parallelism (dist.ep)");
    }
#ifdef AM_CUDA_SIM
    // The simulator checks bounds at the requested size and poisons the block on each reuse.
    sim::note_handout(p, bytes, cuda::compute_stream());
    return tracked(p, bytes, [this, bytes](void* q) {
      sim::note_cached(q, cuda::compute_stream());
      cache_.release(q, bytes);
    });
#else
    return tracked(p, bytes, [this, bytes](void* q) { cache_.release(q, bytes); });
#endif
  }
  void upload(Tensor dst, const void* host) override { cuda::copy_from_host(dst.data, host, dst.nbytes()); }
  void download(void* host, Tensor src) override { cuda::copy_to_host(host, src.data, src.nbytes()); }
  void zero(Tensor t) override { cuda::fill_bytes(t.data, 0, t.nbytes()); }
  void synchronize() override { AM_CUDA(cudaDeviceSynchronize()); }
  void clear_update_flag() override { cuda::fill_bytes(update_flag_.get(), 0, sizeof(int)); }

 protected:
  // bf16 storage (core/backend.h): the ops whose kernels read and write BF16 tensors themselves,
  // rounding at the spec's points; every other op gets fp32 copies from Backend::with_f32.
  bool native_bf16(const char* op) const override {
    static const std::set<std::string_view> ops = {
        // native bf16: kernels
        "rmsnorm_forward",
        "rmsnorm_residual_forward",
        "rope_forward",
        "rope_backward",
        "swiglu_forward",
        "swiglu_backward",
        "cross_entropy_forward",
        "cross_entropy_backward",
        "cross_entropy_forward_backward",
        // native bf16: gemm-attention
        "matmul",
        "attention_forward",
        "attention_backward",
        "attention_decode",
        // native bf16: routing
        "gather_rows",
        "combine",
        "combine_backward",
        "block_norms",
        "block_norms_backward",
        "gather_blocks",
    };
    return ops.count(op) > 0;
  }

  // ---- the ops' computation (Backend has checked their arguments) ----
  void copy_impl(Tensor dst, Tensor src) override { cuda::copy_on_device(dst.data, src.data, dst.nbytes()); }
  void convert_impl(Tensor dst, Tensor src) override {
    if (dst.dtype == DType::BF16) {
      cuda::cast_f32_to_bf16(static_cast<__nv_bfloat16*>(dst.data), src.as<float>(), dst.numel());
    } else {
      cuda::cast_bf16_to_f32(dst.as<float>(), static_cast<const __nv_bfloat16*>(src.data), dst.numel());
    }
  }

  void matmul_impl(Tensor c, Tensor a, bool ta, Tensor b, bool tb, double alpha, double beta) override {
    const int64_t M = ta ? a.dim(1) : a.dim(0), K = ta ? a.dim(0) : a.dim(1);
    const int64_t N = tb ? b.dim(0) : b.dim(1);
    if (M == 0 || N == 0) return;
    const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
    if (bf16_matmul_) {
      // bf16 storage: BF16 operands go to the GEMM as they are, fp32 ones rounded (bf16_operand);
      // a BF16 c is cuBLAS's bf16 C: alpha acc + beta c in fp32, rounded once when written.
      Buffer tmp_a, tmp_b;
      const void* a16 = bf16_operand(a, tmp_a);
      const void* b16 = bf16_operand(b, tmp_b);
      AM_CUBLAS(cublasGemmEx(cublas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                             static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &al, b16, CUDA_R_16BF,
                             static_cast<int>(b.dim(1)), a16, CUDA_R_16BF, static_cast<int>(a.dim(1)), &be, c.data,
                             gemm_type(c), static_cast<int>(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return;
    }
    AM_CUBLAS(cublasSgemm(cublas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N),
                          static_cast<int>(M), static_cast<int>(K), &al, b.as<float>(), static_cast<int>(b.dim(1)),
                          a.as<float>(), static_cast<int>(a.dim(1)), &be, c.as<float>(), static_cast<int>(N)));
  }
  void refresh_weight_copy_impl(Tensor master) override {
    if (!bf16_matmul_) return;
    set_master(Tensor());
    if (!master.data) {
      weight_copy_ = Buffer();
      return;
    }
    const size_t bytes = sizeof(__nv_bfloat16) * static_cast<size_t>(master.numel());
    if (weight_copy_.bytes() < bytes) weight_copy_ = alloc(bytes);
    cuda::cast_f32_to_bf16(static_cast<__nv_bfloat16*>(weight_copy_.get()), master.as<float>(), master.numel());
    set_master(master);  // only once the copy is made
  }
  void add_impl(Tensor out, Tensor a, Tensor b) override {
    cuda::add_f32(out.as<float>(), a.as<float>(), b.as<float>(), out.numel());
  }
  void axpy_impl(Tensor y, Tensor x, double alpha) override {
    cuda::axpy_f32(y.as<float>(), x.as<float>(), static_cast<float>(alpha), y.numel());
  }
  void scale_impl(Tensor x, double s) override { cuda::scale_f32(x.as<float>(), static_cast<float>(s), x.numel()); }
  double sum_squares_impl(Tensor x) override {
    return cuda::sum_squares_f32(x.as<float>(), x.numel(), static_cast<double*>(scratch_.get()));
  }
  void adamw_update_impl(Tensor p, Tensor g, Tensor m, Tensor v, const AdamWStep& s) override {
    const float bc1 = static_cast<float>(1.0 - std::pow(s.beta1, double(s.step)));
    const float bc2 = static_cast<float>(1.0 - std::pow(s.beta2, double(s.step)));
    cuda::adamw_f32(p.as<float>(), g.as<float>(), m.as<float>(), v.as<float>(), p.numel(), static_cast<float>(s.lr),
                    static_cast<float>(s.beta1), static_cast<float>(s.beta2), static_cast<float>(s.eps),
                    static_cast<float>(s.weight_decay), static_cast<float>(s.grad_scale), bc1, bc2,
                    static_cast<int*>(update_flag_.get()), s.tag);
  }
  void copy_update_flag_impl(Tensor dst) override {
    cuda::flag_to_f32(dst.as<float>(), static_cast<const int*>(update_flag_.get()));
  }

  // ---- the kernels of ops.cuh, one family per .cu file ----
  void embedding_forward_impl(Tensor out, Tensor tokens, Tensor table) override {
    cuda::embedding_forward(*this, out, tokens, table);
  }
  void embedding_backward_impl(Tensor dtable, Tensor tokens, Tensor dout) override {
    cuda::embedding_backward(*this, dtable, tokens, dout);
  }
  void rmsnorm_forward_impl(Tensor out, Tensor rstd, Tensor x, Tensor w, double eps) override {
    cuda::rmsnorm_forward(*this, out, rstd, x, w, eps);
  }
  void rmsnorm_backward_impl(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd) override {
    cuda::rmsnorm_backward(*this, dx, dw, dout, x, w, rstd);
  }
  // Fused overrides of Backend's composites: one kernel each instead of the default's two.
  void rmsnorm_residual_forward_impl(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor w,
                                     double eps) override {
    cuda::rmsnorm_residual_forward(*this, res_out, out, rstd, a, b, w, eps);
  }
  void rope_forward_impl(Tensor qkv, const AttnShape& s, double theta, int64_t start) override {
    cuda::rope_forward(*this, qkv, s, theta, start);
  }
  void rope_backward_impl(Tensor dqkv, const AttnShape& s, double theta) override {
    cuda::rope_backward(*this, dqkv, s, theta);
  }
  void silu_forward_impl(Tensor y, Tensor x) override { cuda::silu_forward(*this, y, x); }
  void silu_backward_impl(Tensor dx, Tensor dy, Tensor x) override { cuda::silu_backward(*this, dx, dy, x); }
  void swiglu_forward_impl(Tensor h, Tensor g, Tensor u) override { cuda::swiglu_forward(*this, h, g, u); }
  void swiglu_backward_impl(Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u) override {
    cuda::swiglu_backward(*this, dg, du, dh, g, u);
  }
  void cross_entropy_forward_impl(Tensor losses, Tensor logits, Tensor targets) override {
    cuda::cross_entropy_forward(*this, losses, logits, targets);
  }
  void cross_entropy_forward_backward_impl(Tensor losses, Tensor logits, Tensor targets, double grad_scale) override {
    cuda::cross_entropy_forward_backward(*this, losses, logits, targets, grad_scale);
  }
  void cross_entropy_backward_impl(Tensor dlogits, Tensor logits, Tensor targets, double grad_scale) override {
    cuda::cross_entropy_backward(*this, dlogits, logits, targets, grad_scale);
  }
  void softmax_rows_impl(Tensor p, Tensor z) override { cuda::softmax_rows(*this, p, z); }
  void softmax_rows_backward_impl(Tensor dz, Tensor dp, Tensor p) override {
    cuda::softmax_rows_backward(*this, dz, dp, p);
  }
  void logsumexp_rows_impl(Tensor out, Tensor z) override { cuda::logsumexp_rows(*this, out, z); }
  void axpy_rows_impl(Tensor y, Tensor x, Tensor s, double alpha) override { cuda::axpy_rows(*this, y, x, s, alpha); }
  std::vector<double> column_sums_impl(Tensor x) override { return cuda::column_sums(*this, x); }
  void add_to_rows_impl(Tensor x, const std::vector<double>& v) override { cuda::add_to_rows(*this, x, v); }
  double entropy_sum_impl(Tensor p) override { return cuda::entropy_sum(*this, p); }
  void entropy_backward_impl(Tensor dp, Tensor p, double scale) override {
    cuda::entropy_backward(*this, dp, p, scale);
  }
  void broadcast_columns_impl(Tensor x, Tensor v, int64_t col) override { cuda::broadcast_columns(*this, x, v, col); }
  void copy_columns_impl(Tensor dst, Tensor src, int64_t col) override { cuda::copy_columns(*this, dst, src, col); }
  void attention_forward_impl(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) override {
    cuda::attention_forward(*this, out, lse, qkv, s);
  }
  void attention_decode_impl(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n,
                             const AttnShape& s) override {
    cuda::attention_decode(*this, out, q, k_cache, v_cache, n, s);
  }
  void attention_backward_impl(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
                               const AttnShape& s) override {
    cuda::attention_backward(*this, dqkv, dout, qkv, out, lse, s);
  }
  void topk_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k,
                        int n_true) override {
    cuda::topk_select(*this, slot_expert, slot_gate, rank_scores, gate_scores, k, n_true);
  }
  void topk_select_backward_impl(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                                 int n_true) override {
    cuda::topk_select_backward(*this, dgate_scores, dslot_gate, slot_expert, slot_gate, n_true);
  }
  void topp_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize) override {
    cuda::topp_select(*this, slot_expert, slot_gate, probs, p, renormalize);
  }
  void topp_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs,
                                 bool renormalize) override {
    cuda::topp_select_backward(*this, dprobs, dslot_gate, slot_expert, slot_gate, probs, renormalize);
  }
  void expert_choice_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group,
                                 int64_t capacity) override {
    cuda::expert_choice_select(*this, slot_expert, slot_gate, probs, group, capacity);
  }
  void expert_choice_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert) override {
    cuda::expert_choice_select_backward(*this, dprobs, dslot_gate, slot_expert);
  }
  void capacity_route_impl(Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity) override {
    cuda::capacity_route(*this, routed, slot_expert, scores, n_true, capacity);
  }
  SlotStats slot_stats_impl(Tensor slot_expert, int n_total, int n_true) override {
    return cuda::slot_stats(*this, slot_expert, n_total, n_true);
  }
  int64_t route_build_impl(Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                           Tensor slot_expert, int n_experts) override {
    return cuda::route_build(*this, assign_slot, slot_assign, expert_offsets, slot_expert, n_experts);
  }
  void gather_rows_impl(Tensor out, Tensor x, Tensor assign_slot, int kmax) override {
    cuda::gather_rows(*this, out, x, assign_slot, kmax);
  }
  void combine_impl(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) override {
    cuda::combine(*this, y, expert_out, slot_gate, slot_assign);
  }
  void combine_backward_impl(Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out, Tensor slot_gate,
                             Tensor slot_assign) override {
    cuda::combine_backward(*this, dexpert_out, dslot_gate, dy, expert_out, slot_gate, slot_assign);
  }
  void scatter_rows_add_impl(Tensor dx, Tensor src, Tensor slot_assign) override {
    cuda::scatter_rows_add(*this, dx, src, slot_assign);
  }
  void block_norms_impl(Tensor s, Tensor c, int n_blocks, NormKind kind) override {
    cuda::block_norms(*this, s, c, n_blocks, kind);
  }
  void block_norms_backward_impl(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, NormKind kind) override {
    cuda::block_norms_backward(*this, dc, ds, c, s, n_blocks, kind);
  }
  void gather_blocks_impl(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) override {
    cuda::gather_blocks(*this, out, c, assign_slot, slot_expert);
  }
  void scatter_blocks_add_impl(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) override {
    cuda::scatter_blocks_add(*this, dc, src, assign_slot, slot_expert);
  }

  // ---- a training step that reads the device once: step.cu ----
  Buffer alloc_host(size_t bytes) override {
    void* p = nullptr;
    if (bytes > 0) AM_CUDA(cudaMallocHost(&p, bytes));
    return Buffer(p, bytes, [](void* q) { cudaFreeHost(q); });
  }
  // On the compute stream, like every kernel: ordered after the ops before it.
  void upload_async(Tensor dst, const void* host) override {
    if (dst.nbytes() == 0) return;
    AM_CUDA(cudaMemcpyAsync(dst.data, host, dst.nbytes(), cudaMemcpyHostToDevice, cuda::compute_stream()));
  }
  void loss_sum_accumulate_impl(Tensor acc, Tensor losses, double denom, double divisor) override {
    cuda::loss_sum_accumulate_f32(acc.as<double>(), losses.as<float>(), losses.numel(), denom, divisor);
  }
  void sum_squares_accumulate_impl(Tensor acc, Tensor x) override {
    cuda::sum_squares_accumulate_f32(acc.as<double>(), x.as<float>(), x.numel(), static_cast<double*>(scratch_.get()));
  }
  void sum_squares_spans_impl(Tensor acc, Tensor x, Tensor spans) override {
    const int64_t n = spans.dim(0);
    Buffer partial = alloc(sizeof(double) * cuda::kSumSquaresBlocks * static_cast<size_t>(std::max<int64_t>(n, 1)));
    cuda::sum_squares_spans_f32(acc.as<double>(), x.as<float>(), static_cast<const SumSquaresSpan*>(spans.data), n,
                                static_cast<double*>(partial.get()));
  }
  void adamw_update_multi_impl(Tensor params, Tensor grads, Tensor m, Tensor v, Tensor chunks, Tensor norm_sq,
                               double grad_clip, const AdamWStep& s) override {
    cuda::adamw_multi_f32(params.as<float>(), grads.as<float>(), m.as<float>(), v.as<float>(),
                          static_cast<const AdamWChunk*>(chunks.data), chunks.dim(0), norm_sq.as<double>(), grad_clip,
                          s, static_cast<int*>(multi_flag_.get()), static_cast<int*>(update_flag_.get()));
  }

  // ---- the MoE layer's statistics on the device: moe_stats.cu ----
  void column_sums_to_impl(Tensor out, Tensor x) override { cuda::column_sums_to(*this, out, x); }
  void entropy_sum_to_impl(Tensor out, Tensor p, double coef, double div) override {
    cuda::entropy_sum_to(*this, out, p, coef, div);
  }
  void sum_squares_to_impl(Tensor out, Tensor x, double coef, double div) override {
    cuda::sum_squares_to(*this, out, x, coef, div);
  }
  void slot_counts_impl(Tensor counts, Tensor slot_expert, int n_total, int n_true) override {
    cuda::slot_counts(*this, counts, slot_expert, n_total, n_true);
  }
  void axpy_f64_impl(Tensor y, Tensor x, double alpha) override { cuda::axpy_f64(*this, y, x, alpha); }
  void sum_to_impl(Tensor out, Tensor x) override { cuda::sum_to(*this, out, x); }
  void add_vector_to_rows_impl(Tensor x, Tensor v, double alpha) override {
    cuda::add_vector_to_rows(*this, x, v, alpha);
  }
  void balance_loss_impl(Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true, bool average_nulls,
                         double tokens, double alpha_width) override {
    cuda::balance_loss(*this, value, f, counts, prob_sums, n_true, average_nulls, tokens, alpha_width);
  }
  void selection_bias_update_impl(Tensor bias, Tensor load, double rate) override {
    cuda::selection_bias_update(*this, bias, load, rate);
  }
  void set_grouped_gemm(GroupedGemm mode) override { grouped_gemm_ = mode; }
  void matmul_grouped(const std::vector<Tensor>& c, const std::vector<Tensor>& a, bool ta, const std::vector<Tensor>& b,
                      bool tb, double alpha, double beta) override {
    AM_CHECK(a.size() == c.size() && b.size() == c.size(), "matmul_grouped: {} c, {} a, {} b", c.size(), a.size(),
             b.size());
    std::vector<size_t> live;  // the problems with a non-empty c
    for (size_t i = 0; i < c.size(); ++i) {
      const int64_t M = ta ? a[i].dim(1) : a[i].dim(0), K = ta ? a[i].dim(0) : a[i].dim(1);
      const int64_t N = tb ? b[i].dim(0) : b[i].dim(1), Kb = tb ? b[i].dim(1) : b[i].dim(0);
      AM_CHECK(a[i].ndim == 2 && b[i].ndim == 2 && c[i].ndim == 2 && K == Kb && c[i].dim(0) == M && c[i].dim(1) == N,
               "matmul_grouped problem {}: c {} a {}{} b {}{}", i, c[i].shape_str(), a[i].shape_str(), ta ? "^T" : "",
               b[i].shape_str(), tb ? "^T" : "");
      if (M > 0 && N > 0) live.push_back(i);
    }
    if (live.size() <= 1) {  // one GEMM: no grouping to gain
      for (size_t i : live) matmul(c[i], a[i], ta, b[i], tb, alpha, beta);
      return;
    }
    Buffer tmp_a, tmp_b;
    const std::vector<const void*> pa = operand_pointers(a, live, tmp_a), pb = operand_pointers(b, live, tmp_b);
    std::vector<cuda::GemmProblem> problems;
    for (size_t j = 0; j < live.size(); ++j) {  // row-major c = op(a) op(b) is column-major c^T = op(b)^T op(a)^T
      const size_t i = live[j];
      cuda::GemmProblem q;
      q.m = static_cast<int>(c[i].dim(1));
      q.n = static_cast<int>(c[i].dim(0));
      q.k = static_cast<int>(ta ? a[i].dim(0) : a[i].dim(1));
      q.lda = static_cast<int>(b[i].dim(1));
      q.ldb = static_cast<int>(a[i].dim(1));
      q.ldc = q.m;
      q.a = pb[j];
      q.b = pa[j];
      q.c = c[i].data;
      if (bf16_matmul_) {
        q.c_type = gemm_type(c[i]);
      } else {
        AM_CHECK(c[i].dtype == DType::F32, "matmul_grouped output of dtype {}", dtype_name(c[i].dtype));
      }
      problems.push_back(q);
    }
    const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (bf16_matmul_) {  // bf16 A and B (BF16 tensors as they are), each C fp32 or bf16 (its tensor's dtype)
      const bool kernel = grouped_gemm_ == GroupedGemm::Kernel ||
                          (grouped_gemm_ == GroupedGemm::Auto && cuda::grouped_kernel_pays(problems));
      if (kernel) {
        cuda::gemm_grouped_tc(op_b, op_a, problems, static_cast<float>(alpha), static_cast<float>(beta));
      } else {
        cuda::gemm_each(cublas_, op_b, op_a, problems, static_cast<float>(alpha), static_cast<float>(beta));
      }
      return;
    }
    cuda::gemm_grouped(*this, cublas_, op_b, op_a, problems, CUDA_R_32F, static_cast<float>(alpha),
                       static_cast<float>(beta));
  }

 private:
  // A matmul operand in bf16: a BF16 tensor itself (bf16 storage), its place in the weight copy
  // when it lies inside the registered master weights, else a fresh cast into `tmp` (scratch from
  // the caching allocator).
  const void* bf16_operand(const Tensor& t, Buffer& tmp) {
    if (t.dtype == DType::BF16) return t.data;
    if (const int64_t at = master_offset(t); at >= 0) {
      return static_cast<const __nv_bfloat16*>(weight_copy_.get()) + at;
    }
    tmp = alloc(sizeof(__nv_bfloat16) * static_cast<size_t>(t.numel()));
    cuda::cast_f32_to_bf16(static_cast<__nv_bfloat16*>(tmp.get()), t.as<float>(), t.numel());
    return tmp.get();
  }
  // The cuBLAS type of a GEMM's C under bf16_matmul: bf16 for a BF16 tensor, else fp32.
  static cudaDataType gemm_type(const Tensor& c) {
    AM_CHECK(c.dtype == DType::F32 || c.dtype == DType::BF16, "matmul output of dtype {}", dtype_name(c.dtype));
    return c.dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
  }

  // The operands ts[live[j]] of a grouped matmul as the GEMM reads them: fp32 pointers, or under
  // bf16_matmul their bf16 values: BF16 tensors as they are, fp32 ones from the weight copy when
  // inside the master weights, else cast
  // into `tmp`: in one launch when they tile one address range (the experts' row blocks), else
  // one cast each.
  std::vector<const void*> operand_pointers(const std::vector<Tensor>& ts, const std::vector<size_t>& live,
                                            Buffer& tmp) {
    std::vector<const void*> out(live.size());
    std::vector<size_t> rest;
    for (size_t j = 0; j < live.size(); ++j) {
      const Tensor& t = ts[live[j]];
      AM_CHECK(t.dtype == DType::F32 || (bf16_matmul_ && t.dtype == DType::BF16), "matmul_grouped operand of dtype {}",
               dtype_name(t.dtype));
      if (!bf16_matmul_ || t.dtype == DType::BF16) {
        out[j] = t.data;
      } else if (const int64_t at = master_offset(t); at >= 0) {
        out[j] = static_cast<const __nv_bfloat16*>(weight_copy_.get()) + at;
      } else {
        rest.push_back(j);
      }
    }
    if (rest.empty()) return out;
    std::vector<size_t> order = rest;  // by address: do they tile [lo, hi)?
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return ts[live[x]].data < ts[live[y]].data; });
    const char* lo = static_cast<const char*>(ts[live[order.front()]].data);
    bool tiled = true;
    int64_t total = 0;
    for (size_t j : order) {
      const Tensor& t = ts[live[j]];
      tiled = tiled && static_cast<const char*>(t.data) == lo + total * 4;
      total += t.numel();
    }
    tmp = alloc(sizeof(__nv_bfloat16) * static_cast<size_t>(std::max<int64_t>(total, 1)));
    auto* dst = static_cast<__nv_bfloat16*>(tmp.get());
    if (tiled) {
      cuda::cast_f32_to_bf16(dst, reinterpret_cast<const float*>(lo), total);
      for (size_t j : rest) out[j] = dst + (static_cast<const char*>(ts[live[j]].data) - lo) / 4;
      return out;
    }
    int64_t at = 0;
    for (size_t j : rest) {
      const Tensor& t = ts[live[j]];
      cuda::cast_f32_to_bf16(dst + at, t.as<float>(), t.numel());
      out[j] = dst + at;
      at += t.numel();
    }
    return out;
  }

  DType dtype_;
  int device_ = 0;
  cudaDeviceProp props_{};
  cublasHandle_t cublas_ = nullptr;
  CachingAllocator cache_{[](size_t n) -> void* {
                            void* p = nullptr;
                            return cudaMalloc(&p, n) == cudaSuccess ? p : (cudaGetLastError(), nullptr);
                          },
                          [](void* p) { cudaFree(p); }};
  Buffer scratch_;
  Buffer update_flag_;  // int on the device: see Backend::adamw_update
  Buffer multi_flag_;   // int on the device: adamw_update_multi's smallest bad tag (cuda::kNoTag between calls)
  Buffer weight_copy_;  // the bf16 copy of the master weights (refresh_weight_copy)
  GroupedGemm grouped_gemm_ = GroupedGemm::Auto;  // matmul_grouped under bf16 (set_grouped_gemm)
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

std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device, bool bf16_matmul) {
  int count = 0;
  AM_CUDA(cudaGetDeviceCount(&count));
  AM_CUDA(cudaSetDevice(device % count));
  return std::make_unique<CudaBackend>(dtype, bf16_matmul);
}

}  // namespace am

// CpuBackend: the reference implementation of am::Backend on host memory. It is the executable
// spec the CUDA kernels are tested against: clarity first, then reasonable speed. Every `_impl`
// (Backend has checked the arguments' dtypes and shapes) dispatches on the compute dtype (F32 or
// F64) to a templated kernel in src/cpu/ops_*.h. Matrix products go to OpenBLAS, the rest is OpenMP.
//
// Threads: `threads` OpenMP threads run each op; <= 0 means OMP_NUM_THREADS when set, else the
// cores (shared among the ranks of a node): cpu/threads.h. OpenBLAS is set to one
// thread (process-wide): matmul runs one BLAS call per fixed tile of C on the OpenMP threads.
// Results are bit-identical whatever the thread count (see cpu/parallel.h, cpu/ops_matmul.h).
#pragma once

#include "core/backend.h"

#include <memory>
#include <vector>

namespace am {

class CpuBackend final : public Backend {
 public:
  // bf16_matmul (F32 only): matmul emulates bf16 operands exactly, attention the tensor-core
  // kernels' bf16 rounding points (see Backend::bf16_matmul()).
  CpuBackend(DType dtype, int threads, bool bf16_matmul = false);

  std::string name() const override { return "cpu"; }
  DType dtype() const override { return dtype_; }
  std::string describe() const override;
  int threads() const { return threads_; }

  Buffer alloc(size_t bytes) override;
  void upload(Tensor dst, const void* host) override;
  Buffer alloc_host(size_t bytes) override { return alloc(bytes); }                // plain memory
  void upload_async(Tensor dst, const void* host) override { upload(dst, host); }  // a plain copy
  void download(void* host, Tensor src) override;
  void zero(Tensor t) override;
  void synchronize() override {}
  void clear_update_flag() override { update_flag_ = 0; }

 protected:
  // The ops' computation (their checks are Backend's); rmsnorm_residual_forward and
  // cross_entropy_forward_backward keep Backend's composite defaults.
  void copy_impl(Tensor dst, Tensor src) override;
  void convert_impl(Tensor dst, Tensor src) override;
  void matmul_impl(Tensor c, Tensor a, bool trans_a, Tensor b, bool trans_b, double alpha, double beta) override;
  void refresh_weight_copy_impl(Tensor master) override;
  void add_impl(Tensor out, Tensor a, Tensor b) override;
  void axpy_impl(Tensor y, Tensor x, double alpha) override;
  void scale_impl(Tensor x, double s) override;
  double sum_squares_impl(Tensor x) override;

  void embedding_forward_impl(Tensor out, Tensor tokens, Tensor table) override;
  void embedding_backward_impl(Tensor dtable, Tensor tokens, Tensor dout) override;

  void rmsnorm_forward_impl(Tensor out, Tensor rstd, Tensor x, Tensor w, double eps) override;
  void rmsnorm_backward_impl(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd) override;

  void rope_forward_impl(Tensor qkv, const AttnShape& s, double theta, int64_t start) override;
  void rope_backward_impl(Tensor dqkv, const AttnShape& s, double theta) override;

  void attention_forward_impl(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) override;
  void attention_backward_impl(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
                               const AttnShape& s) override;
  void attention_decode_impl(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n,
                             const AttnShape& s) override;

  void silu_forward_impl(Tensor y, Tensor x) override;
  void silu_backward_impl(Tensor dx, Tensor dy, Tensor x) override;
  void swiglu_forward_impl(Tensor h, Tensor g, Tensor u) override;
  void swiglu_backward_impl(Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u) override;

  void cross_entropy_forward_impl(Tensor losses, Tensor logits, Tensor targets) override;
  // cross_entropy_forward_backward: Backend's default (forward, then backward in place), which
  // gives the bits of the former one-pass CPU kernel.
  void cross_entropy_backward_impl(Tensor dlogits, Tensor logits, Tensor targets, double grad_scale) override;

  void softmax_rows_impl(Tensor p, Tensor z) override;
  void softmax_rows_backward_impl(Tensor dz, Tensor dp, Tensor p) override;
  void logsumexp_rows_impl(Tensor out, Tensor z) override;
  void axpy_rows_impl(Tensor y, Tensor x, Tensor s, double alpha) override;
  std::vector<double> column_sums_impl(Tensor x) override;
  void add_to_rows_impl(Tensor x, const std::vector<double>& v) override;

  // Expert selection, activation norms and entropy: cpu_backend_select.cpp.
  void topk_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k,
                        int n_true) override;
  void topk_select_backward_impl(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                                 int n_true) override;
  void topp_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize) override;
  void topp_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs,
                                 bool renormalize) override;
  void expert_choice_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group,
                                 int64_t capacity) override;
  void expert_choice_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert) override;
  void capacity_route_impl(Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity) override;
  SlotStats slot_stats_impl(Tensor slot_expert, int n_total, int n_true) override;

  void block_norms_impl(Tensor s, Tensor c, int n_blocks, NormKind kind) override;
  void block_norms_backward_impl(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, NormKind kind) override;
  void gather_blocks_impl(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) override;
  void scatter_blocks_add_impl(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) override;
  void broadcast_columns_impl(Tensor x, Tensor v, int64_t col) override;
  void copy_columns_impl(Tensor dst, Tensor src, int64_t col) override;

  double entropy_sum_impl(Tensor p) override;
  void entropy_backward_impl(Tensor dp, Tensor p, double scale) override;

  int64_t route_build_impl(Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                           Tensor slot_expert, int n_experts) override;
  void gather_rows_impl(Tensor out, Tensor x, Tensor assign_slot, int kmax) override;
  void combine_impl(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) override;
  void combine_backward_impl(Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out, Tensor slot_gate,
                             Tensor slot_assign) override;
  void scatter_rows_add_impl(Tensor dx, Tensor src, Tensor slot_assign) override;

  void adamw_update_impl(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWStep& s) override;
  void copy_update_flag_impl(Tensor dst) override;

  // the step's accumulators and the multi-tensor AdamW: cpu_backend_step.cpp
  void loss_sum_accumulate_impl(Tensor acc, Tensor losses, double denom, double divisor) override;
  void sum_squares_accumulate_impl(Tensor acc, Tensor x) override;
  void sum_squares_spans_impl(Tensor acc, Tensor x, Tensor spans) override;
  void adamw_update_multi_impl(Tensor params, Tensor grads, Tensor m, Tensor v, Tensor chunks, Tensor norm_sq,
                               double grad_clip, const AdamWStep& s) override;

  // the MoE layer's statistics on the device: cpu_backend_moe_stats.cpp
  void column_sums_to_impl(Tensor out, Tensor x) override;
  void entropy_sum_to_impl(Tensor out, Tensor p, double coef, double div) override;
  void sum_squares_to_impl(Tensor out, Tensor x, double coef, double div) override;
  void slot_counts_impl(Tensor counts, Tensor slot_expert, int n_total, int n_true) override;
  void axpy_f64_impl(Tensor y, Tensor x, double alpha) override;
  void sum_to_impl(Tensor out, Tensor x) override;
  void add_vector_to_rows_impl(Tensor x, Tensor v, double alpha) override;
  void balance_loss_impl(Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true, bool average_nulls,
                         double tokens, double alpha_width) override;
  void selection_bias_update_impl(Tensor bias, Tensor load, double rate) override;

 private:
  // Makes this backend's thread count current for OpenMP: several backends with different
  // counts may live in one process (the determinism tests do).
  void enter() const;

  // bf16 matmul operands: `t`'s values rounded to bf16 (kept as floats), read from the weight
  // copy when t lies inside the master weights, else rounded into `scratch`.
  const float* bf16_operand(const Tensor& t, std::vector<float>& scratch) const;

  DType dtype_;
  int threads_;
  std::string threads_source_;                              // why threads_ (cpu/threads.h)
  int update_flag_ = 0;                                     // see Backend::adamw_update
  std::vector<float> weight_copy_, scratch_a_, scratch_b_;  // rounded values
};

// dtype: F32 or F64; threads <= 0: all cores; bf16_matmul: see CpuBackend.
std::unique_ptr<Backend> make_cpu_backend(DType dtype, int threads, bool bf16_matmul = false);

}  // namespace am

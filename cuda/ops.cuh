// The CUDA kernels behind CudaBackend, one family per .cu file (named below). Each function has
// the signature and exact semantics of the Backend op of the same name (src/core/backend.h), plus
// the backend first (for scratch allocations), and is its `_impl`: Backend has checked the
// arguments' dtypes and shapes. fp32 tensors; the default stream.
#pragma once

#include "core/backend.h"

#include <vector>

namespace am::cuda {

// ---- dense.cu ----
// (Native bf16 storage, CudaBackend::native_bf16: the RMSNorm forwards, RoPE, SwiGLU here and
// cross-entropy in rows.cu take BF16 tensors; each says which combinations, the rest via fp32 copies.)
void embedding_forward(Backend& be, Tensor out, Tensor tokens, Tensor table);
void embedding_backward(Backend& be, Tensor dtable, Tensor tokens, Tensor dout);
void rmsnorm_forward(Backend& be, Tensor out, Tensor rstd, Tensor x, Tensor w, double eps);
void rmsnorm_backward(Backend& be, Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd);
void rmsnorm_residual_forward(Backend& be, Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor w,
                              double eps);
void rope_forward(Backend& be, Tensor qkv, const AttnShape& s, double theta, int64_t start);
void rope_backward(Backend& be, Tensor dqkv, const AttnShape& s, double theta);
void silu_forward(Backend& be, Tensor y, Tensor x);
void silu_backward(Backend& be, Tensor dx, Tensor dy, Tensor x);
void swiglu_forward(Backend& be, Tensor h, Tensor g, Tensor u);
void swiglu_backward(Backend& be, Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u);

// ---- rows.cu ----
void cross_entropy_forward(Backend& be, Tensor losses, Tensor logits, Tensor targets);
void cross_entropy_forward_backward(Backend& be, Tensor losses, Tensor logits, Tensor targets, double grad_scale);
void cross_entropy_backward(Backend& be, Tensor dlogits, Tensor logits, Tensor targets, double grad_scale);
void softmax_rows(Backend& be, Tensor p, Tensor z);
void softmax_rows_backward(Backend& be, Tensor dz, Tensor dp, Tensor p);
void logsumexp_rows(Backend& be, Tensor out, Tensor z);
void axpy_rows(Backend& be, Tensor y, Tensor x, Tensor s, double alpha);
std::vector<double> column_sums(Backend& be, Tensor x);
void add_to_rows(Backend& be, Tensor x, const std::vector<double>& v);
double entropy_sum(Backend& be, Tensor p);
void entropy_backward(Backend& be, Tensor dp, Tensor p, double scale);
void broadcast_columns(Backend& be, Tensor x, Tensor v, int64_t col);
void copy_columns(Backend& be, Tensor dst, Tensor src, int64_t col);

// ---- attention.cu ----
void attention_forward(Backend& be, Tensor out, Tensor lse, Tensor qkv, const AttnShape& s);
void attention_backward(Backend& be, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, const AttnShape& s);

// ---- attention_decode.cu (native bf16 when out, q and the caches share one dtype) ----
void attention_decode(Backend& be, Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n, const AttnShape& s);

// ---- select.cu ----
void topk_select(Backend& be, Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k,
                 int n_true);
void topk_select_backward(Backend& be, Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                          int n_true);
void topp_select(Backend& be, Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize);
void topp_select_backward(Backend& be, Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                          Tensor probs, bool renormalize);
void expert_choice_select(Backend& be, Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group,
                          int64_t capacity);
void expert_choice_select_backward(Backend& be, Tensor dprobs, Tensor dslot_gate, Tensor slot_expert);
void capacity_route(Backend& be, Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity);
Backend::SlotStats slot_stats(Backend& be, Tensor slot_expert, int n_total, int n_true);

// ---- routing.cu ----
// (gather_rows, gather_blocks, combine, combine_backward, block_norms and block_norms_backward also
// take BF16 tensors: CudaBackend names them in native_bf16; routing.cu says which arguments)
int64_t route_build(Backend& be, Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                    Tensor slot_expert, int n_experts);
void gather_rows(Backend& be, Tensor out, Tensor x, Tensor assign_slot, int kmax);
void combine(Backend& be, Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign);
void combine_backward(Backend& be, Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out,
                      Tensor slot_gate, Tensor slot_assign);
void scatter_rows_add(Backend& be, Tensor dx, Tensor src, Tensor slot_assign);
void block_norms(Backend& be, Tensor s, Tensor c, int n_blocks, Backend::NormKind kind);
void block_norms_backward(Backend& be, Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, Backend::NormKind kind);
void gather_blocks(Backend& be, Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert);
void scatter_blocks_add(Backend& be, Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert);

// ---- moe_stats.cu: the MoE layer's statistics on the device ----
void column_sums_to(Backend& be, Tensor out, Tensor x);
void entropy_sum_to(Backend& be, Tensor out, Tensor p, double coef, double div);
void sum_squares_to(Backend& be, Tensor out, Tensor x, double coef, double div);
void slot_counts(Backend& be, Tensor counts, Tensor slot_expert, int n_total, int n_true);
void axpy_f64(Backend& be, Tensor y, Tensor x, double alpha);
void sum_to(Backend& be, Tensor out, Tensor x);
void add_vector_to_rows(Backend& be, Tensor x, Tensor v, double alpha);
void balance_loss(Backend& be, Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true, bool average_nulls,
                  double tokens, double alpha_width);
void selection_bias_update(Backend& be, Tensor bias, Tensor load, double rate);

}  // namespace am::cuda

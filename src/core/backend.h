// Backend: the one op interface through which the model, the MoE layer and the trainer drive
// either the CPU reference (src/cpu/) or CUDA (cuda/). The model code is written once against
// this class; a backend only adds kernels.
//
// The op contract. Each op is a public non-virtual method declared here, with its shapes and
// semantics in a comment. Its definition (backend.cpp, backend_moe.cpp) checks the arguments'
// dtypes, shapes and scalar ranges ONCE, for every backend, with errors that name the op, the
// argument, its shape and the expected one; then it calls the protected virtual `<op>_impl` with
// the same arguments. A backend implements only the `_impl`s: the computation, plus the checks
// that are its own (index ranges that need device data, its kernels' size limits).
// A composite op (rmsnorm_residual_forward, cross_entropy_forward_backward) has a default `_impl`
// (backend.cpp) built from simpler ops; a backend may override it with a fused kernel, and
// nothing else changes: no other backend, no model code (docs/architecture.md, "The one op
// interface").
//
// Conventions (every op follows them; the CPU implementation is the executable spec):
//  - Float tensors have dtype == dtype() (the compute dtype: F32 or F64 on the CPU), or BF16 under
//    run.precision: bf16 (storage only, see "bf16 storage" below), the rule of check_float();
//    master weights, their gradients and optimizer moments exactly dtype() (check_master).
//    Index tensors are I32. Shapes are row-major and given in the comment of each
//    op. A tensor documented as (B, T, C) may come as any shape with the same last dimension and
//    element count (e.g. (B*T, C)); so may (N, d) and friends.
//  - "write" outputs are overwritten; "acc" outputs are accumulated into (+=). Gradients of
//    parameters are always accumulated, so gradient accumulation over micro-batches is free.
//  - Every op is deterministic: the same inputs give the same bits, whatever the thread count.
//  - Scalars come back to the host as double.
//
// Symbols: N tokens (= B*T), d model width, V vocabulary, n experts, f expert width, A number of
// (token, expert) assignments, kmax slots per token.
#pragma once

#include "core/f32_copies.h"
#include "core/tensor.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace am {

// Geometry of one attention call. qkv rows are packed [q (H*hd) | k (Hkv*hd) | v (Hkv*hd)];
// query head h reads kv head h / (H / Hkv).
struct AttnShape {
  int64_t B = 0, T = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  int64_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }
};

// One AdamW step (PyTorch's AdamW, decoupled weight decay), applied element-wise:
//   g = grad * grad_scale                      (grad_scale folds in clipping)
//   m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g^2
//   p = p - lr * weight_decay * p
//   p = p - lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
struct AdamWStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0, grad_scale = 1;
  int64_t step = 1;  // 1-based, for bias correction
  int tag = 1;       // > 0: what the update flag records when this call writes a non-finite value
};

// One row of adamw_update_multi's table: elements [param_at, param_at + numel) of the parameters
// and gradients, [state_at, state_at + numel) of the moments; decay: weight decay applies; tag > 0:
// what the update flag records. As I32 words in a device tensor (n, kAdamWChunkWords).
struct AdamWChunk {
  int64_t param_at = 0, state_at = 0, numel = 0;
  int32_t decay = 0, tag = 1;
};
static_assert(sizeof(AdamWChunk) == 32, "AdamWChunk is four 8-byte words");
inline constexpr int64_t kAdamWChunkWords = sizeof(AdamWChunk) / sizeof(int32_t);
// Rows of at most this many elements (one GPU block each); any split gives the same result.
inline constexpr int64_t kAdamWChunkElems = 16384;
// Appends the rows of one piece, split into rows of at most kAdamWChunkElems elements.
inline void append_adamw_chunks(std::vector<AdamWChunk>& rows, int64_t param_at, int64_t state_at, int64_t numel,
                                bool decay, int tag) {
  for (int64_t b = 0; b < numel; b += kAdamWChunkElems) {
    const int64_t n = numel - b < kAdamWChunkElems ? numel - b : kAdamWChunkElems;
    rows.push_back(AdamWChunk{param_at + b, state_at + b, n, decay ? 1 : 0, tag});
  }
}

// One row of sum_squares_spans' table; as I32 words in a device tensor (n, kSumSquaresSpanWords).
struct SumSquaresSpan {
  int64_t begin = 0, numel = 0;
  int32_t slot = 0, unused = 0;
};
static_assert(sizeof(SumSquaresSpan) == 24, "SumSquaresSpan is three 8-byte words");
inline constexpr int64_t kSumSquaresSpanWords = sizeof(SumSquaresSpan) / sizeof(int32_t);

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;      // "cpu" or "cuda"
  virtual DType dtype() const = 0;           // compute dtype of float tensors
  virtual std::string describe() const = 0;  // one line for the start-up table
  // The device's own name (CUDA: cudaDeviceProp::name, "NVIDIA H200"; the simulator names itself);
  // "" on the CPU. Keys the peak-FLOP/s table of the training log's MFU (train/flops.h).
  virtual std::string device_name() const { return ""; }

  // The float-dtype rule of every op, in this one place: a float tensor argument has the compute
  // dtype (AM_CHECK failure naming the op, the argument, its shape and both dtypes otherwise).
  void check_float(const char* op, const char* name, const Tensor& t) const;
  // Master weights, gradients, optimizer moments and flags: exactly dtype(), never bf16 storage.
  void check_master(const char* op, const char* name, const Tensor& t) const;

  // ---- bf16 storage (run.precision: bf16) ----
  // Under bf16_matmul() (and dtype() F32), any float argument of an op may be a BF16 tensor: bf16
  // is a storage type only. The op computes exactly what it computes on the fp32 widening of its
  // BF16 inputs (exact), and each BF16 output is rounded to bf16 (nearest even) once, when the op
  // writes it (an "acc" output: round(old + contribution)). Those are the rounding points; between
  // them everything is fp32 as before. The model stores its activations in act_dtype()
  // (docs/training.md, "bf16 activations"). Backend implements this once (with_f32, below): a
  // backend's `_impl` never sees a BF16 tensor unless it names the op in native_bf16(); the CPU
  // reference names none, so it is the executable spec of those rounding points.
  DType act_dtype() const { return bf16_matmul_ && dtype() == DType::F32 ? DType::BF16 : dtype(); }
  // dst write = src: F32 <-> BF16 (rounding to nearest even), or a copy when the dtypes agree.
  void convert(Tensor dst, Tensor src);

  // ---- memory ----
  virtual Buffer alloc(size_t bytes) = 0;                 // contents undefined; the Buffer must not outlive the backend
  virtual void upload(Tensor dst, const void* host) = 0;  // host holds dst.nbytes()
  virtual void download(void* host, Tensor src) = 0;      // host receives src.nbytes()
  virtual void zero(Tensor t) = 0;
  void copy(Tensor dst, Tensor src);  // same dtype and numel
  virtual void synchronize() = 0;

  // ---- dense math ----
  // c (M,N) = alpha * op(a) op(b) + beta * c, op(a) (M,K), op(b) (K,N); a, b, c are 2-D.
  // beta == 0 overwrites c whatever it held. With bf16_matmul(), a and b are rounded to bf16
  // (nearest even) before the product, which is accumulated in fp32; c is fp32, or BF16 (bf16 storage:
  // alpha * acc + beta * c in fp32, rounded once).
  void matmul(Tensor c, Tensor a, bool trans_a, Tensor b, bool trans_b, double alpha, double beta);
  void add(Tensor out, Tensor a, Tensor b);     // out = a + b; out may alias a or b
  void axpy(Tensor y, Tensor x, double alpha);  // y += alpha x
  void scale(Tensor x, double s);               // x *= s
  double sum_squares(Tensor x);                 // sum x^2, accumulated in double

  // ---- embedding ----
  // out (N,d) write = table (V,d)[tokens (N)]
  void embedding_forward(Tensor out, Tensor tokens, Tensor table);
  // dtable (V,d) acc: dtable[tokens[i]] += dout[i]
  void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout);

  // ---- RMSNorm: out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps) ----
  // out (N,d) write, rstd (N) write, x (N,d), w (d)
  void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, double eps);
  // dx (N,d) acc, dw (d) acc, dout (N,d), x (N,d), w (d), rstd (N)
  void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd);
  // Composite: the residual add and the RMSNorm after it. res_out (N,d) write = a + b (as add);
  // out (N,d), rstd (N) write = rmsnorm_forward of res_out with w (d). a, b (N,d); res_out may
  // alias a or b. Default: add, then rmsnorm_forward; the CUDA backend overrides it (one kernel).
  void rmsnorm_residual_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor w, double eps);

  // ---- RoPE, rotate-half layout (HF Llama), position = start + index t within the sequence ----
  // For each q and k head, i < hd/2, angle = (start + t) * theta^(-2i/hd):
  //   x'[i] = x[i] cos - x[i + hd/2] sin ;  x'[i + hd/2] = x[i + hd/2] cos + x[i] sin
  // qkv (B,T,qkv_dim) in place; v is untouched. start >= 0: the position of the first row (the
  // KV-cache decoder rotates one new row, T = 1, at its position; training uses 0).
  void rope_forward(Tensor qkv, const AttnShape& s, double theta, int64_t start = 0);
  // dqkv (B,T,qkv_dim) in place: the transpose rotation on the dq and dk parts.
  void rope_backward(Tensor dqkv, const AttnShape& s, double theta);

  // ---- causal multi-head attention, scale 1/sqrt(hd) ----
  // out (B,T,H*hd) write, lse (B,H,T) write (log-sum-exp of each scaled score row), qkv packed.
  void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s);
  // dqkv (B,T,qkv_dim) write (all of it), dout (B,T,H*hd), qkv, out, lse as saved by forward.
  void attention_backward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, const AttnShape& s);
  // Decode attention (the KV-cache decoder, model/decode.h): ONE query row against the first n
  // positions of a cache. out (1,H*hd) write; q (1,H*hd) the new row's query, already rotated;
  // k_cache, v_cache (L,Hkv*hd), L >= n >= 1: rows [0, n) hold the keys (already rotated) and values
  // of positions 0 .. n-1, the query's own included. Query head h reads kv head h / (H / Hkv);
  // scores scale 1/sqrt(hd) q.k_j, softmax over j < n, out = sum_j p_j v_j: row n-1 of
  // attention_forward over those n positions (the same sums; O(n) work, not O(n^2)). s gives
  // n_heads, n_kv_heads and head_dim (its B and T are not read). No lse: nothing differentiates it.
  void attention_decode(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n, const AttnShape& s);

  // ---- SiLU and SwiGLU: silu(x) = x * sigmoid(x); swiglu: h = SiLU(g) * u ----
  void silu_forward(Tensor y, Tensor x);                                      // y, x (M,f); y write
  void silu_backward(Tensor dx, Tensor dy, Tensor x);                         // dx (M,f) acc
  void swiglu_forward(Tensor h, Tensor g, Tensor u);                          // h, g, u (M,f)
  void swiglu_backward(Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u);  // dg, du write

  // ---- softmax cross-entropy over the vocabulary ----
  // losses (N) write: logsumexp(logits[i]) - logits[i][targets[i]]; targets < 0 give loss 0.
  void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets);
  // The same, then logits (N,V) is overwritten by its gradient grad_scale * (softmax - onehot)
  // (rows with target < 0 get zero gradient).
  // Composite. Default: cross_entropy_forward, then cross_entropy_backward in place; the CUDA
  // backend overrides it with one pass over the logits (llm.c's fused classifier).
  void cross_entropy_forward_backward(Tensor losses, Tensor logits, Tensor targets, double grad_scale);
  // dlogits (N,V) write = grad_scale * (softmax(logits[i]) - onehot(targets[i])); rows with
  // target < 0 get zeros. dlogits may alias logits (each row is read whole before it is written).
  void cross_entropy_backward(Tensor dlogits, Tensor logits, Tensor targets, double grad_scale);

  // ---- row softmax helpers (router probabilities, z-loss) ----
  void softmax_rows(Tensor p, Tensor z);                       // p, z (N,n)
  void softmax_rows_backward(Tensor dz, Tensor dp, Tensor p);  // dz acc
  void logsumexp_rows(Tensor out, Tensor z);                   // out (N), z (N,n)
  // y (N,n) acc: y[t] += alpha * s[t] * x[t], s (N)
  void axpy_rows(Tensor y, Tensor x, Tensor s, double alpha);
  // x (N,n): out[j] = sum_t x[t][j] (double, deterministic); returned on the host
  std::vector<double> column_sums(Tensor x);
  // x (N,n) acc: x[t][j] += v[j] for every row t; v is a host vector of length n
  void add_to_rows(Tensor x, const std::vector<double>& v);

  // ---- expert selection ----
  // Slots: slot_expert (N,kmax) I32 holds an expert id or -1 (empty); slot_gate (N,kmax) its gate.
  // Ids >= n_true are null experts (AdaMoE): they take a slot but compute nothing.
  //
  // Top-k: each row keeps the k largest rank_scores (ties: lower id first), in descending order.
  // Null ids keep their slot with gate 0; the true experts' gates are the softmax of gate_scores
  // over the selected true experts (Mixtral's renormalised top-k for logits; AoE Alg. 2 for norms;
  // AdaMoE's renormalisation over true experts). rank_scores and gate_scores (N,n_total) may be the
  // same tensor (they differ with the auxiliary-loss-free selection bias). A row whose k slots are
  // all null gets all-zero gates.
  void topk_select(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k, int n_true);
  // dgate_scores (N,n_total) acc: for selected true j, += g_j (dg_j - sum_l g_l dg_l) (l true)
  void topk_select_backward(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, int n_true);
  // Top-p (Huang et al.): per row, experts sorted by probs descending (ties: lower id); keep the
  // shortest prefix whose sum reaches p (the expert that crosses p is kept), at most kmax =
  // slot_expert.dim(1) experts; unused slots -1. Gates: probs[e], or probs[e] / (sum of the kept
  // probs) when renormalize.
  void topp_select(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize);
  // dprobs (N,n) acc: raw gates: dprobs[e] += dg; renormalised: dprobs[e] += (dg_e - sum g dg) / S
  void topp_select_backward(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs,
                            bool renormalize);
  // Expert choice (Zhou et al.): tokens in groups of `group` consecutive rows (N % group == 0);
  // in each group every expert takes its `capacity` highest-probs tokens (ties: lower row).
  // slot_expert (N,n): [t][e] = e if expert e chose token t, else -1; slot_gate = probs there, 0 else.
  void expert_choice_select(Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group, int64_t capacity);
  // dprobs (N,n) acc: += dslot_gate where the slot is filled
  void expert_choice_select_backward(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert);
  // Which slots reach an expert. routed (N,kmax) write = slot_expert, except -1 for null ids
  // (>= n_true) and, when capacity > 0, for every assignment beyond the `capacity` with the highest
  // scores[t][e] among those of expert e (ties: lower slot index) -- dropped tokens keep the residual.
  void capacity_route(Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity);
  // Counts of a slot array: per id in [0, n_total) (host), and the number of rows with no id < n_true.
  struct SlotStats {
    std::vector<int64_t> per_id;
    int64_t rows_without_true = 0;
  };
  SlotStats slot_stats(Tensor slot_expert, int n_total, int n_true);

  // ---- activation norms (AoE) ----
  // c (N, n_blocks*dl): each row is n_blocks blocks of dl. s (N,S), S >= n_blocks: columns
  // [0, n_blocks) write = the norm of each block (L2, L1 or Linf); other columns untouched.
  enum class NormKind { L2, L1, Linf };
  void block_norms(Tensor s, Tensor c, int n_blocks, NormKind kind);
  // dc acc += ds[t][b] * d||c_b||/dc_b: L2 c_b/||c_b|| (0 when ||c_b|| = 0), L1 sign(c_b),
  // Linf sign(c) at the first index of max |c| (0 elsewhere). ds (N,S) read in columns [0, n_blocks).
  void block_norms_backward(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, NormKind kind);
  // out (A,dl) write: out[a] = block e of row t of c (N, n*dl), t = assign_slot[a] / kmax,
  // e = slot_expert[assign_slot[a]] (kmax = slot_expert.dim(1)).
  void gather_blocks(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert);
  // dc (N, n*dl) acc: block e of row t += src[a] (the adjoint of gather_blocks)
  void scatter_blocks_add(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert);
  // x (N,C) columns [col, col + m) write = v (m) in every row (learnable null-expert scores)
  void broadcast_columns(Tensor x, Tensor v, int64_t col);
  // dst (N,C) columns [col, col + w) write = src (N,w)
  void copy_columns(Tensor dst, Tensor src, int64_t col);

  // ---- entropy (confidence entropy loss and metric) ----
  double entropy_sum(Tensor p);                              // sum_t -sum_j p log p (0 log 0 = 0)
  void entropy_backward(Tensor dp, Tensor p, double scale);  // dp acc += -scale (log p + 1), p > 0

  // ---- routing: slots (N,kmax) -> expert-major assignment list ----
  // slot_expert (N,kmax) holds an expert id or -1 (empty slot). Writes assign_slot (>= A) with
  // the slot index (t*kmax + j) of each assignment, sorted by expert and, within an expert, by
  // slot index; slot_assign (N,kmax) with the position of each slot in that list (-1 if empty);
  // and expert_offsets (host, n+1): expert e owns assignments [off[e], off[e+1]). Returns A.
  int64_t route_build(Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets, Tensor slot_expert,
                      int n_experts);
  // out (A,d) write: out[a] = x[assign_slot[a] / kmax]
  void gather_rows(Tensor out, Tensor x, Tensor assign_slot, int kmax);
  // y (N,d) write: y[t] = sum over filled slots j (in j order) of slot_gate[t][j] * eo[slot_assign[t][j]]
  void combine(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign);
  // dexpert_out (A,d) write = gate * dy[t];  dslot_gate (N,kmax) write = <dy[t], eo[a]> (0 if empty)
  void combine_backward(Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out, Tensor slot_gate,
                        Tensor slot_assign);
  // dx (N,d) acc: dx[t] += sum over filled slots j of src[slot_assign[t][j]]
  void scatter_rows_add(Tensor dx, Tensor src, Tensor slot_assign);

  // ---- optimizer ----
  // param, m, v updated in place, grad read (all of one numel). The update flag: when a value this
  // call writes to param, m or v is not finite and the flag is 0, the flag becomes s.tag, so that
  // it names the first such call since clear_update_flag() (the optimizer tags each tensor). The
  // update records it as it goes: no extra pass over the values.
  void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWStep& s);
  // dst (1) write = the update flag as a number of dst's dtype (0: every update was finite),
  // ordered after the ops before it and without waiting for them: on the GPU a device-to-device
  // copy, so the flag reaches the host with the next download of dst's buffer
  // (Transformer::forward reads it together with the losses). The flag stays set until cleared.
  void copy_update_flag(Tensor dst);
  virtual void clear_update_flag() = 0;

  // ---- mixed precision (run.precision: bf16) ----
  // When on, matmul takes bf16 operands and accumulates in fp32 (tensor cores on the GPU, an exact
  // emulation on the CPU), and attention rounds its matrix-product operands to bf16 (the GPU's
  // tensor-core kernels; the CPU emulates their rounding points, cpu/ops_attention_bf16.h); every
  // other op, the parameters (the fp32 master weights), their gradients and the optimizer state
  // stay fp32.
  bool bf16_matmul() const { return bf16_matmul_; }
  // Makes the bf16 copy of `master`, the flat fp32 buffer of every parameter: from then on, matmul
  // operands that lie inside `master` are read from that copy instead of being rounded per call
  // (the same values, rounded once). Call it after every change of the values (Transformer::forward
  // does, first thing); an empty Tensor forgets the copy (~Transformer does). Without
  // bf16_matmul() it does nothing.
  void refresh_weight_copy(Tensor master);

  // ---- a training step that reads the device once ----
  // A training step that reads the device once (train/step.cpp, docs/training.md "One read-back
  // per step"): batch uploads that do not wait, losses and the gradient norm accumulated in an F64
  // device buffer, and one AdamW launch over every parameter tensor that takes its clip factor from
  // that buffer.
  //
  // Host memory for upload_async: page-locked (pinned) on the GPU, plain memory on the CPU.
  virtual Buffer alloc_host(size_t bytes) = 0;
  // dst write = host (dst.nbytes() bytes), ordered after the ops before it and without waiting for
  // them: the host bytes must stay unchanged until the next synchronising call (download,
  // synchronize), since the copy may read them any time before that. `host` should come from
  // alloc_host (on the GPU other memory is staged first). On the CPU a plain copy.
  virtual void upload_async(Tensor dst, const void* host) = 0;
  // acc (1) F64 acc: acc[0] += (sum_i losses[i] / denom) / divisor; losses (n) of dtype(). The sum
  // is in double, in index order on the CPU (a deterministic reduction on the GPU): the mean loss
  // of a micro-batch (denom: its targets) over `divisor` micro-batches.
  void loss_sum_accumulate(Tensor acc, Tensor losses, double denom, double divisor);
  // acc (1) F64 acc: acc[0] += sum x^2, the sum as sum_squares computes it (x of dtype()).
  void sum_squares_accumulate(Tensor acc, Tensor x);
  // acc (k) F64 acc: for each row of spans ((n, kSumSquaresSpanWords) I32: SumSquaresSpan rows), in
  // row order, acc[slot] += the sum of squares of x[begin, begin + numel) as sum_squares computes
  // it: the CPU result is that loop of sum_squares calls summed on the host (the gradient norm's
  // buckets, dist/grad_sync.h); on the GPU a fixed number of launches for all rows, no read-back.
  void sum_squares_spans(Tensor acc, Tensor x, Tensor spans);
  // Multi-tensor AdamW: one call for many parameter tensors (or pieces of them) of the flat
  // buffers params, grads (elements indexed by param_at) and m, v (indexed by state_at), all of
  // dtype(). chunks (n, kAdamWChunkWords) I32 holds n AdamWChunk rows (make_adamw_chunks). Each
  // row is AdamW as adamw_update computes it, with s (s.weight_decay where the row's decay is set,
  // else 0) and the clip factor from the device: norm = sqrt(norm_sq[0] + norm_sq[1]) (norm_sq (2)
  // F64), grad_scale = grad_clip > 0 ? min(1, grad_clip / (norm + 1e-6)) : 1 (s.grad_scale and
  // s.tag are not used). The update flag: when it is 0 before the call and a row writes a non-finite
  // value, it becomes the smallest tag of such rows (the same tensor as a loop of adamw_update
  // calls in increasing tag order would name).
  void adamw_update_multi(Tensor params, Tensor grads, Tensor m, Tensor v, Tensor chunks, Tensor norm_sq,
                          double grad_clip, const AdamWStep& s);

  // ---- memory accounting (benchmarks): bytes allocated through alloc() and not yet freed, and
  // the most ever held at once ----
  size_t bytes_in_use() const { return mem_->in_use.load(); }
  size_t peak_bytes() const { return mem_->peak.load(); }

  // ---- the MoE layer on the device (backend_moe_stats.cpp) ----
  // The MoE layer's statistics and auxiliary losses stay in the backend's memory (device memory
  // on the GPU): F64 vectors written and accumulated by the ops below, read by the host only when
  // a step logs (docs/architecture.md, "The MoE layer on the device"). Same formulas, in double, as
  // the host code they replace: column_sums, entropy_sum, sum_squares, slot_stats, add_to_rows.
  // out (n) F64 write: out[j] = sum_t x[t][j], x (N,n) (the values column_sums returns)
  void column_sums_to(Tensor out, Tensor x);
  // out (1) F64 write: (coef * entropy_sum(p)) / div
  void entropy_sum_to(Tensor out, Tensor p, double coef, double div);
  // out (1) F64 write: (coef * sum_squares(x)) / div
  void sum_squares_to(Tensor out, Tensor x, double coef, double div);
  // counts (n_total + 1) F64 write: [0, n_total) slots per id (slot_stats' per_id), [n_total] the
  // rows with no id < n_true (rows_without_true). slot_expert (N,kmax) I32, ids in [-1, n_total).
  void slot_counts(Tensor counts, Tensor slot_expert, int n_total, int n_true);
  // y acc += alpha * x, both F64 of one numel
  void axpy_f64(Tensor y, Tensor x, double alpha);
  // out (1) write (F32 or F64): the sum of x (F64) in index order from 0, rounded once to out's dtype
  void sum_to(Tensor out, Tensor x);
  // x (N,C) acc: x[t][j] = round(x[t][j] + v[j] * alpha) in double, for j < v.numel() <= C;
  // v (a device vector) is F64 or of x's dtype. The device twin of add_to_rows.
  void add_vector_to_rows(Tensor x, Tensor v, double alpha);
  // The switch balancing loss from device counts (../shared/spec/selection.md §4). counts (>= n+m)
  // F64 slots per id, prob_sums (n+m) F64 column sums of P, over `tokens` tokens. f (n+m) F64
  // write: f_i = counts_i / tokens for i < n; null columns 0, or with average_nulls the mean of
  // their f (summed in order). value (1) F64 write: alpha_width * sum_i f_i prob_sums_i / tokens.
  void balance_loss(Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true, bool average_nulls,
                    double tokens, double alpha_width);
  // Auxiliary-loss-free balancing: bias (n, dtype()) -= rate where load[i] (n, F64) is above the
  // mean of load (summed in order as load_i / n), += rate where below; in double, rounded once.
  void selection_bias_update(Tensor bias, Tensor load, double rate);
  // Grouped matmul (the experts' GEMMs): for each i, c[i] = alpha op(a[i]) op(b[i]) + beta c[i]
  // with matmul's semantics (bf16 operands under bf16_matmul() included); shapes differ per
  // problem, problems with an empty c are skipped. The default is the loop of matmul (the CPU's:
  // the same bits as before); CUDA makes it one cublasGemmGroupedBatchedEx in fp32, and under bf16
  // one launch of its own tensor-core kernel or a cublasGemmEx per problem (GroupedGemm).
  virtual void matmul_grouped(const std::vector<Tensor>& c, const std::vector<Tensor>& a, bool trans_a,
                              const std::vector<Tensor>& b, bool trans_b, double alpha, double beta) {
    AM_CHECK(a.size() == c.size() && b.size() == c.size(), "matmul_grouped: {} c, {} a, {} b", c.size(), a.size(),
             b.size());
    for (size_t i = 0; i < c.size(); ++i) {
      if (c[i].numel() > 0) matmul(c[i], a[i], trans_a, b[i], trans_b, alpha, beta);
    }
  }

  // How matmul_grouped runs where a backend has two ways (CUDA under bf16: docs/benchmarks.md,
  // "Expert GEMMs"): Auto chooses by the problems' size, Kernel and Library force the project's
  // grouped kernel or the library's per-problem GEMMs (for the GEMM probe and tests). The results
  // agree within matmul's tolerance, not bitwise. Backends with one way ignore it.
  enum class GroupedGemm { Auto, Kernel, Library };
  virtual void set_grouped_gemm(GroupedGemm) {}

  // with_f32's and F32Copies' arguments (core/f32_copies.h): each tensor of an op with how the op
  // uses it. A plain `&t` is read only; wr(&t) is written whole without being read (an output);
  // rw(&t) is read and written (in place, accumulated, or written in part). Arguments that share
  // memory are one tensor, of both uses.
  using Use = ArgUse;
  using Arg = TensorArg;
  static Arg wr(Tensor* t) { return Arg(t, Use::Write); }
  static Arg rw(Tensor* t) { return Arg(t, Use::ReadWrite); }

 protected:
  // ---- the computation of each op, called by the op after its checks; the same arguments ----
  // the MoE layer's statistics and auxiliary-loss values (backend_moe_stats.cpp)
  virtual void column_sums_to_impl(Tensor out, Tensor x) = 0;
  virtual void entropy_sum_to_impl(Tensor out, Tensor p, double coef, double div) = 0;
  virtual void sum_squares_to_impl(Tensor out, Tensor x, double coef, double div) = 0;
  virtual void slot_counts_impl(Tensor counts, Tensor slot_expert, int n_total, int n_true) = 0;
  virtual void axpy_f64_impl(Tensor y, Tensor x, double alpha) = 0;
  virtual void sum_to_impl(Tensor out, Tensor x) = 0;
  virtual void add_vector_to_rows_impl(Tensor x, Tensor v, double alpha) = 0;
  virtual void balance_loss_impl(Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true,
                                 bool average_nulls, double tokens, double alpha_width) = 0;
  virtual void selection_bias_update_impl(Tensor bias, Tensor load, double rate) = 0;
  // the step's accumulators and the multi-tensor AdamW (backend_step.cpp)
  virtual void loss_sum_accumulate_impl(Tensor acc, Tensor losses, double denom, double divisor) = 0;
  virtual void sum_squares_accumulate_impl(Tensor acc, Tensor x) = 0;
  virtual void sum_squares_spans_impl(Tensor acc, Tensor x, Tensor spans) = 0;
  virtual void adamw_update_multi_impl(Tensor params, Tensor grads, Tensor m, Tensor v, Tensor chunks, Tensor norm_sq,
                                       double grad_clip, const AdamWStep& s) = 0;
  // memory
  virtual void copy_impl(Tensor dst, Tensor src) = 0;
  virtual void convert_impl(Tensor dst, Tensor src) = 0;  // F32 <-> BF16 (checked, dtypes differ)
  // bf16 storage: true when this backend's `op`_impl takes BF16 tensors itself (a kernel templated
  // on the storage type); otherwise the op runs through with_f32. Default: none.
  virtual bool native_bf16(const char* op) const {
    (void)op;
    return false;
  }
  // Runs fn() with every BF16 tensor among the arguments replaced by an fp32 copy: widened from it
  // (exactly) when the op reads it, rounded back into it (nearest even) when the op writes it.
  // Without BF16 tensors, or when native_bf16(op), just fn().
  template <typename Fn>
  decltype(auto) with_f32(const char* op, std::initializer_list<Arg> args, Fn&& fn) {
    if (!needs_widening(op, args)) return fn();
    F32Copies w(*this, args);
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      w.narrow();
    } else {
      auto r = fn();
      w.narrow();
      return r;
    }
  }
  // dense math
  virtual void matmul_impl(Tensor c, Tensor a, bool trans_a, Tensor b, bool trans_b, double alpha, double beta) = 0;
  virtual void add_impl(Tensor out, Tensor a, Tensor b) = 0;
  virtual void axpy_impl(Tensor y, Tensor x, double alpha) = 0;
  virtual void scale_impl(Tensor x, double s) = 0;
  virtual double sum_squares_impl(Tensor x) = 0;
  // embedding
  virtual void embedding_forward_impl(Tensor out, Tensor tokens, Tensor table) = 0;
  virtual void embedding_backward_impl(Tensor dtable, Tensor tokens, Tensor dout) = 0;
  // RMSNorm
  virtual void rmsnorm_forward_impl(Tensor out, Tensor rstd, Tensor x, Tensor w, double eps) = 0;
  virtual void rmsnorm_backward_impl(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd) = 0;
  virtual void rmsnorm_residual_forward_impl(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor w,
                                             double eps);
  // RoPE and attention
  virtual void rope_forward_impl(Tensor qkv, const AttnShape& s, double theta, int64_t start) = 0;
  virtual void rope_backward_impl(Tensor dqkv, const AttnShape& s, double theta) = 0;
  virtual void attention_forward_impl(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) = 0;
  virtual void attention_backward_impl(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
                                       const AttnShape& s) = 0;
  virtual void attention_decode_impl(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n,
                                     const AttnShape& s) = 0;
  // SiLU and SwiGLU
  virtual void silu_forward_impl(Tensor y, Tensor x) = 0;
  virtual void silu_backward_impl(Tensor dx, Tensor dy, Tensor x) = 0;
  virtual void swiglu_forward_impl(Tensor h, Tensor g, Tensor u) = 0;
  virtual void swiglu_backward_impl(Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u) = 0;
  // cross-entropy
  virtual void cross_entropy_forward_impl(Tensor losses, Tensor logits, Tensor targets) = 0;
  virtual void cross_entropy_forward_backward_impl(Tensor losses, Tensor logits, Tensor targets,
                                                   double grad_scale);  // composite: has a default
  virtual void cross_entropy_backward_impl(Tensor dlogits, Tensor logits, Tensor targets, double grad_scale) = 0;
  // row softmax helpers
  virtual void softmax_rows_impl(Tensor p, Tensor z) = 0;
  virtual void softmax_rows_backward_impl(Tensor dz, Tensor dp, Tensor p) = 0;
  virtual void logsumexp_rows_impl(Tensor out, Tensor z) = 0;
  virtual void axpy_rows_impl(Tensor y, Tensor x, Tensor s, double alpha) = 0;
  virtual std::vector<double> column_sums_impl(Tensor x) = 0;
  virtual void add_to_rows_impl(Tensor x, const std::vector<double>& v) = 0;
  // expert selection
  virtual void topk_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k,
                                int n_true) = 0;
  virtual void topk_select_backward_impl(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                                         int n_true) = 0;
  virtual void topp_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize) = 0;
  virtual void topp_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                                         Tensor probs, bool renormalize) = 0;
  virtual void expert_choice_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group,
                                         int64_t capacity) = 0;
  virtual void expert_choice_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert) = 0;
  virtual void capacity_route_impl(Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity) = 0;
  virtual SlotStats slot_stats_impl(Tensor slot_expert, int n_total, int n_true) = 0;
  // activation norms and column writers
  virtual void block_norms_impl(Tensor s, Tensor c, int n_blocks, NormKind kind) = 0;
  virtual void block_norms_backward_impl(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, NormKind kind) = 0;
  virtual void gather_blocks_impl(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) = 0;
  virtual void scatter_blocks_add_impl(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) = 0;
  virtual void broadcast_columns_impl(Tensor x, Tensor v, int64_t col) = 0;
  virtual void copy_columns_impl(Tensor dst, Tensor src, int64_t col) = 0;
  // entropy
  virtual double entropy_sum_impl(Tensor p) = 0;
  virtual void entropy_backward_impl(Tensor dp, Tensor p, double scale) = 0;
  // routing
  virtual int64_t route_build_impl(Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                                   Tensor slot_expert, int n_experts) = 0;
  virtual void gather_rows_impl(Tensor out, Tensor x, Tensor assign_slot, int kmax) = 0;
  virtual void combine_impl(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) = 0;
  virtual void combine_backward_impl(Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out,
                                     Tensor slot_gate, Tensor slot_assign) = 0;
  virtual void scatter_rows_add_impl(Tensor dx, Tensor src, Tensor slot_assign) = 0;
  // optimizer
  virtual void adamw_update_impl(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWStep& s) = 0;
  virtual void copy_update_flag_impl(Tensor dst) = 0;
  // mixed precision
  virtual void refresh_weight_copy_impl(Tensor master) = 0;

  // Wraps a raw allocation of `bytes` in a Buffer whose deleter calls `release` and keeps the
  // counters above (they outlive the backend if a Buffer does).
  Buffer tracked(void* p, size_t bytes, std::function<void(void*)> release) {
    auto mem = mem_;
    const size_t now = mem->in_use.fetch_add(bytes) + bytes;
    size_t peak = mem->peak.load();
    while (now > peak && !mem->peak.compare_exchange_weak(peak, now)) {}
    return Buffer(p, bytes, [mem, bytes, release = std::move(release)](void* q) {
      mem->in_use.fetch_sub(bytes);
      release(q);
    });
  }

  bool bf16_matmul_ = false;

  // whether with_f32 makes fp32 copies (core/backend_bf16.cpp)
  bool needs_widening(const char* op, std::initializer_list<Arg> args) const;
  // The master weights of the last refresh_weight_copy (an empty Tensor: none), and where a matmul
  // operand lies in them: its element offset, or -1 when it is not wholly inside.
  void set_master(Tensor master) { master_ = master; }
  int64_t master_offset(const Tensor& t) const {
    const char *p = static_cast<const char*>(t.data), *m = static_cast<const char*>(master_.data);
    if (!m || p < m || p + t.nbytes() > m + master_.nbytes()) return -1;
    return static_cast<int64_t>((p - m) / dtype_size(master_.dtype));
  }

 private:
  Tensor master_;
  struct MemoryCounters {
    std::atomic<size_t> in_use{0}, peak{0};
  };
  std::shared_ptr<MemoryCounters> mem_ = std::make_shared<MemoryCounters>();
};

// run.precision: fp32 (everything fp32), fp64 (CPU only: the finite-difference tests' precision)
// or bf16 (fp32 tensors and master weights, bf16 matrix products: see bf16_matmul()).
enum class Precision { FP32, FP64, BF16 };
Precision precision_from_name(const std::string& name);  // "fp32", "fp64", "bf16"; else UserError
DType precision_dtype(Precision p);                      // the dtype of float tensors: F64 or F32

// make_backend, the factory that knows every backend: src/backends/backend_factory.h.

}  // namespace am

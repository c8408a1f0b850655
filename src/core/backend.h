// Backend: the one op interface through which the model, the MoE layer and the trainer drive
// either the CPU reference (src/cpu/) or CUDA (cuda/). The model code is written once against
// this class; a backend only adds kernels.
//
// Conventions (every op follows them; the CPU implementation is the executable spec):
//  - Float tensors have dtype == dtype() (the compute dtype: F32 or F64 on the CPU). Index tensors
//    are I32. Shapes are row-major and given in the comment of each op; ops check them.
//  - "write" outputs are overwritten; "acc" outputs are accumulated into (+=). Gradients of
//    parameters are always accumulated, so gradient accumulation over micro-batches is free.
//  - Every op is deterministic: the same inputs give the same bits, whatever the thread count.
//  - Scalars come back to the host as double.
//
// Symbols: N tokens (= B*T), d model width, V vocabulary, n experts, f expert width, A number of
// (token, expert) assignments, kmax slots per token.
#pragma once

#include "core/tensor.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
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

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu" or "cuda"
  virtual DType dtype() const = 0;       // compute dtype of float tensors
  virtual std::string describe() const = 0;  // one line for the start-up table

  // ---- memory ----
  virtual Buffer alloc(size_t bytes) = 0;  // contents undefined; the Buffer must not outlive the backend
  virtual void upload(Tensor dst, const void* host) = 0;      // host holds dst.nbytes()
  virtual void download(void* host, Tensor src) = 0;          // host receives src.nbytes()
  virtual void zero(Tensor t) = 0;
  virtual void copy(Tensor dst, Tensor src) = 0;              // same dtype and numel
  virtual void synchronize() = 0;

  // ---- dense math ----
  // c (M,N) = alpha * op(a) op(b) + beta * c, op(a) (M,K), op(b) (K,N); a, b, c are 2-D.
  // beta == 0 overwrites c whatever it held. With bf16_matmul(), a and b are rounded to bf16
  // (nearest even) before the product, which is accumulated in fp32: c is fp32 either way.
  virtual void matmul(Tensor c, Tensor a, bool trans_a, Tensor b, bool trans_b, double alpha,
                      double beta) = 0;
  virtual void add(Tensor out, Tensor a, Tensor b) = 0;      // out = a + b; out may alias a or b
  virtual void axpy(Tensor y, Tensor x, double alpha) = 0;   // y += alpha x
  virtual void scale(Tensor x, double s) = 0;                // x *= s
  virtual double sum_squares(Tensor x) = 0;                  // sum x^2, accumulated in double

  // ---- embedding ----
  // out (N,d) write = table (V,d)[tokens (N)]
  virtual void embedding_forward(Tensor out, Tensor tokens, Tensor table) = 0;
  // dtable (V,d) acc: dtable[tokens[i]] += dout[i]
  virtual void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout) = 0;

  // ---- RMSNorm: out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps) ----
  // out (N,d) write, rstd (N) write, x (N,d), w (d)
  virtual void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, double eps) = 0;
  // dx (N,d) acc, dw (d) acc, dout (N,d), x (N,d), w (d), rstd (N)
  virtual void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w,
                                Tensor rstd) = 0;

  // ---- RoPE, rotate-half layout (HF Llama), position = index t within the sequence ----
  // For each q and k head, i < hd/2, angle = t * theta^(-2i/hd):
  //   x'[i] = x[i] cos - x[i + hd/2] sin ;  x'[i + hd/2] = x[i + hd/2] cos + x[i] sin
  // qkv (B,T,qkv_dim) in place; v is untouched.
  virtual void rope_forward(Tensor qkv, const AttnShape& s, double theta) = 0;
  // dqkv (B,T,qkv_dim) in place: the transpose rotation on the dq and dk parts.
  virtual void rope_backward(Tensor dqkv, const AttnShape& s, double theta) = 0;

  // ---- causal multi-head attention, scale 1/sqrt(hd) ----
  // out (B,T,H*hd) write, lse (B,H,T) write (log-sum-exp of each scaled score row), qkv packed.
  virtual void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) = 0;
  // dqkv (B,T,qkv_dim) write (all of it), dout (B,T,H*hd), qkv, out, lse as saved by forward.
  virtual void attention_backward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
                                  const AttnShape& s) = 0;

  // ---- SiLU and SwiGLU: silu(x) = x * sigmoid(x); swiglu: h = SiLU(g) * u ----
  virtual void silu_forward(Tensor y, Tensor x) = 0;                    // y, x (M,f); y write
  virtual void silu_backward(Tensor dx, Tensor dy, Tensor x) = 0;       // dx (M,f) acc
  virtual void swiglu_forward(Tensor h, Tensor g, Tensor u) = 0;        // h, g, u (M,f)
  virtual void swiglu_backward(Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u) = 0;  // dg, du write

  // ---- softmax cross-entropy over the vocabulary ----
  // losses (N) write: logsumexp(logits[i]) - logits[i][targets[i]]; targets < 0 give loss 0.
  virtual void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets) = 0;
  // The same, then logits (N,V) is overwritten by its gradient grad_scale * (softmax - onehot)
  // (rows with target < 0 get zero gradient).
  virtual void cross_entropy_forward_backward(Tensor losses, Tensor logits, Tensor targets,
                                              double grad_scale) = 0;

  // ---- row softmax helpers (router probabilities, z-loss) ----
  virtual void softmax_rows(Tensor p, Tensor z) = 0;                       // p, z (N,n)
  virtual void softmax_rows_backward(Tensor dz, Tensor dp, Tensor p) = 0;  // dz acc
  virtual void logsumexp_rows(Tensor out, Tensor z) = 0;                   // out (N), z (N,n)
  // y (N,n) acc: y[t] += alpha * s[t] * x[t], s (N)
  virtual void axpy_rows(Tensor y, Tensor x, Tensor s, double alpha) = 0;
  // x (N,n): out[j] = sum_t x[t][j] (double, deterministic); returned on the host
  virtual std::vector<double> column_sums(Tensor x) = 0;
  // x (N,n) acc: x[t][j] += v[j] for every row t; v is a host vector of length n
  virtual void add_to_rows(Tensor x, const std::vector<double>& v) = 0;

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
  virtual void topk_select(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores,
                           Tensor gate_scores, int k, int n_true) = 0;
  // dgate_scores (N,n_total) acc: for selected true j, += g_j (dg_j - sum_l g_l dg_l) (l true)
  virtual void topk_select_backward(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert,
                                    Tensor slot_gate, int n_true) = 0;
  // Top-p (Huang et al.): per row, experts sorted by probs descending (ties: lower id); keep the
  // shortest prefix whose sum reaches p (the expert that crosses p is kept), at most kmax =
  // slot_expert.dim(1) experts; unused slots -1. Gates: probs[e], or probs[e] / (sum of the kept
  // probs) when renormalize.
  virtual void topp_select(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p,
                           bool renormalize) = 0;
  // dprobs (N,n) acc: raw gates: dprobs[e] += dg; renormalised: dprobs[e] += (dg_e - sum g dg) / S
  virtual void topp_select_backward(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert,
                                    Tensor slot_gate, Tensor probs, bool renormalize) = 0;
  // Expert choice (Zhou et al.): tokens in groups of `group` consecutive rows (N % group == 0);
  // in each group every expert takes its `capacity` highest-probs tokens (ties: lower row).
  // slot_expert (N,n): [t][e] = e if expert e chose token t, else -1; slot_gate = probs there, 0 else.
  virtual void expert_choice_select(Tensor slot_expert, Tensor slot_gate, Tensor probs,
                                    int64_t group, int64_t capacity) = 0;
  // dprobs (N,n) acc: += dslot_gate where the slot is filled
  virtual void expert_choice_select_backward(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert) = 0;
  // Which slots reach an expert. routed (N,kmax) write = slot_expert, except -1 for null ids
  // (>= n_true) and, when capacity > 0, for every assignment beyond the `capacity` with the highest
  // scores[t][e] among those of expert e (ties: lower slot index) -- dropped tokens keep the residual.
  virtual void capacity_route(Tensor routed, Tensor slot_expert, Tensor scores, int n_true,
                              int64_t capacity) = 0;
  // Counts of a slot array: per id in [0, n_total) (host), and the number of rows with no id < n_true.
  struct SlotStats {
    std::vector<int64_t> per_id;
    int64_t rows_without_true = 0;
  };
  virtual SlotStats slot_stats(Tensor slot_expert, int n_total, int n_true) = 0;

  // ---- activation norms (AoE) ----
  // c (N, n_blocks*dl): each row is n_blocks blocks of dl. s (N,S), S >= n_blocks: columns
  // [0, n_blocks) write = the norm of each block (L2, L1 or Linf); other columns untouched.
  enum class NormKind { L2, L1, Linf };
  virtual void block_norms(Tensor s, Tensor c, int n_blocks, NormKind kind) = 0;
  // dc acc += ds[t][b] * d||c_b||/dc_b: L2 c_b/||c_b|| (0 when ||c_b|| = 0), L1 sign(c_b),
  // Linf sign(c) at the first index of max |c| (0 elsewhere). ds (N,S) read in columns [0, n_blocks).
  virtual void block_norms_backward(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks,
                                    NormKind kind) = 0;
  // out (A,dl) write: out[a] = block e of row t of c (N, n*dl), t = assign_slot[a] / kmax,
  // e = slot_expert[assign_slot[a]] (kmax = slot_expert.dim(1)).
  virtual void gather_blocks(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) = 0;
  // dc (N, n*dl) acc: block e of row t += src[a] (the adjoint of gather_blocks)
  virtual void scatter_blocks_add(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) = 0;
  // x (N,C) columns [col, col + m) write = v (m) in every row (learnable null-expert scores)
  virtual void broadcast_columns(Tensor x, Tensor v, int64_t col) = 0;
  // dst (N,C) columns [col, col + w) write = src (N,w)
  virtual void copy_columns(Tensor dst, Tensor src, int64_t col) = 0;

  // ---- entropy (confidence entropy loss and metric) ----
  virtual double entropy_sum(Tensor p) = 0;                            // sum_t -sum_j p log p (0 log 0 = 0)
  virtual void entropy_backward(Tensor dp, Tensor p, double scale) = 0;  // dp acc += -scale (log p + 1), p > 0

  // ---- routing: slots (N,kmax) -> expert-major assignment list ----
  // slot_expert (N,kmax) holds an expert id or -1 (empty slot). Writes assign_slot (>= A) with
  // the slot index (t*kmax + j) of each assignment, sorted by expert and, within an expert, by
  // slot index; slot_assign (N,kmax) with the position of each slot in that list (-1 if empty);
  // and expert_offsets (host, n+1): expert e owns assignments [off[e], off[e+1]). Returns A.
  virtual int64_t route_build(Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                              Tensor slot_expert, int n_experts) = 0;
  // out (A,d) write: out[a] = x[assign_slot[a] / kmax]
  virtual void gather_rows(Tensor out, Tensor x, Tensor assign_slot, int kmax) = 0;
  // y (N,d) write: y[t] = sum over filled slots j (in j order) of slot_gate[t][j] * eo[slot_assign[t][j]]
  virtual void combine(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) = 0;
  // dexpert_out (A,d) write = gate * dy[t];  dslot_gate (N,kmax) write = <dy[t], eo[a]> (0 if empty)
  virtual void combine_backward(Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out,
                                Tensor slot_gate, Tensor slot_assign) = 0;
  // dx (N,d) acc: dx[t] += sum over filled slots j of src[slot_assign[t][j]]
  virtual void scatter_rows_add(Tensor dx, Tensor src, Tensor slot_assign) = 0;

  // ---- optimizer ----
  // param, m, v updated in place, grad read (all of one numel). The update flag: when a value this
  // call writes to param, m or v is not finite and the flag is 0, the flag becomes s.tag, so that
  // it names the first such call since clear_update_flag() (the optimizer tags each tensor). The
  // update records it as it goes: no extra pass over the values.
  virtual void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWStep& s) = 0;
  // dst (1) write = the update flag as a number of dst's dtype (0: every update was finite),
  // ordered after the ops before it and without waiting for them: on the GPU a device-to-device
  // copy, so the flag reaches the host with the next download of dst's buffer
  // (Transformer::forward reads it together with the losses). The flag stays set until cleared.
  virtual void copy_update_flag(Tensor dst) = 0;
  virtual void clear_update_flag() = 0;

  // ---- mixed precision (run.precision: bf16) ----
  // When on, matmul takes bf16 operands and accumulates in fp32 (tensor cores on the GPU, an exact
  // emulation on the CPU); every other op, the parameters (the fp32 master weights), their
  // gradients and the optimizer state stay fp32.
  bool bf16_matmul() const { return bf16_matmul_; }
  // Makes the bf16 copy of `master`, the flat fp32 buffer of every parameter: from then on, matmul
  // operands that lie inside `master` are read from that copy instead of being rounded per call
  // (the same values, rounded once). Call it after every change of the values (Transformer::forward
  // does, first thing); an empty Tensor forgets the copy (~Transformer does). Without
  // bf16_matmul() it does nothing.
  virtual void refresh_weight_copy(Tensor master) = 0;

  // ---- memory accounting (benchmarks): bytes allocated through alloc() and not yet freed, and
  // the most ever held at once ----
  size_t bytes_in_use() const { return mem_->in_use.load(); }
  size_t peak_bytes() const { return mem_->peak.load(); }

  // ---- added by moe (issue 11) ----
  // The MoE layer's statistics and auxiliary losses stay in the backend's memory (device memory
  // on the GPU): F64 vectors written and accumulated by the ops below, read by the host only when
  // a step logs (docs/architecture.md, "The MoE layer on the device"). Same formulas, in double, as
  // the host code they replace: column_sums, entropy_sum, sum_squares, slot_stats, add_to_rows.
  // out (n) F64 write: out[j] = sum_t x[t][j], x (N,n) (the values column_sums returns)
  virtual void column_sums_to(Tensor out, Tensor x) = 0;
  // out (1) F64 write: (coef * entropy_sum(p)) / div
  virtual void entropy_sum_to(Tensor out, Tensor p, double coef, double div) = 0;
  // out (1) F64 write: (coef * sum_squares(x)) / div
  virtual void sum_squares_to(Tensor out, Tensor x, double coef, double div) = 0;
  // counts (n_total + 1) F64 write: [0, n_total) slots per id (slot_stats' per_id), [n_total] the
  // rows with no id < n_true (rows_without_true). slot_expert (N,kmax) I32, ids in [-1, n_total).
  virtual void slot_counts(Tensor counts, Tensor slot_expert, int n_total, int n_true) = 0;
  // y acc += alpha * x, both F64 of one numel
  virtual void axpy_f64(Tensor y, Tensor x, double alpha) = 0;
  // out (1) write (F32 or F64): the sum of x (F64) in index order from 0, rounded once to out's dtype
  virtual void sum_to(Tensor out, Tensor x) = 0;
  // x (N,C) acc: x[t][j] = round(x[t][j] + v[j] * alpha) in double, for j < v.numel() <= C;
  // v (a device vector) is F64 or of x's dtype. The device twin of add_to_rows.
  virtual void add_vector_to_rows(Tensor x, Tensor v, double alpha) = 0;
  // The switch balancing loss from device counts (../shared/spec/selection.md §4). counts (>= n+m)
  // F64 slots per id, prob_sums (n+m) F64 column sums of P, over `tokens` tokens. f (n+m) F64
  // write: f_i = counts_i / tokens for i < n; null columns 0, or with average_nulls the mean of
  // their f (summed in order). value (1) F64 write: alpha_width * sum_i f_i prob_sums_i / tokens.
  virtual void balance_loss(Tensor value, Tensor f, Tensor counts, Tensor prob_sums, int n_true,
                            bool average_nulls, double tokens, double alpha_width) = 0;
  // Auxiliary-loss-free balancing: bias (n, dtype()) -= rate where load[i] (n, F64) is above the
  // mean of load (summed in order as load_i / n), += rate where below; in double, rounded once.
  virtual void selection_bias_update(Tensor bias, Tensor load, double rate) = 0;
  // Grouped matmul (the experts' GEMMs): for each i, c[i] = alpha op(a[i]) op(b[i]) + beta c[i]
  // with matmul's semantics (bf16 operands under bf16_matmul() included); shapes differ per
  // problem, problems with an empty c are skipped. The default is the loop of matmul (the CPU's:
  // the same bits as before); CUDA makes it one cublasGemmGroupedBatchedEx.
  virtual void matmul_grouped(const std::vector<Tensor>& c, const std::vector<Tensor>& a, bool trans_a,
                              const std::vector<Tensor>& b, bool trans_b, double alpha, double beta) {
    AM_CHECK(a.size() == c.size() && b.size() == c.size(), "matmul_grouped: {} c, {} a, {} b", c.size(),
             a.size(), b.size());
    for (size_t i = 0; i < c.size(); ++i) {
      if (c[i].numel() > 0) matmul(c[i], a[i], trans_a, b[i], trans_b, alpha, beta);
    }
  }

 protected:
  // Wraps a raw allocation of `bytes` in a Buffer whose deleter calls `release` and keeps the
  // counters above (they outlive the backend if a Buffer does).
  Buffer tracked(void* p, size_t bytes, std::function<void(void*)> release) {
    auto mem = mem_;
    const size_t now = mem->in_use.fetch_add(bytes) + bytes;
    size_t peak = mem->peak.load();
    while (now > peak && !mem->peak.compare_exchange_weak(peak, now)) {
    }
    return Buffer(p, bytes, [mem, bytes, release = std::move(release)](void* q) {
      mem->in_use.fetch_sub(bytes);
      release(q);
    });
  }

  bool bf16_matmul_ = false;
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
DType precision_dtype(Precision p);                       // the dtype of float tensors: F64 or F32

// kind: "cpu", "cuda" or "auto" (CUDA when it is built and a device is present, else CPU).
// threads <= 0: all cores. Runs create theirs through make_checked_backend (train/backend_check.h),
// which checks a GPU backend against the CPU reference first.
std::unique_ptr<Backend> make_backend(const std::string& kind, Precision precision, int threads);

}  // namespace am

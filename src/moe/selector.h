// Selector: turns scores into slots (../shared/spec/selection.md §3). A selector fills, for every
// token, kmax() slots with an expert id (ids >= n are null experts) or -1 (empty), and a gate
// weight each. Gate weights are differentiable functions of the scores or probs; the chosen set
// is not. capacity() is the per-expert cap the layer applies afterwards (0: none).
#pragma once

#include "config/config.h"
#include "core/backend.h"
#include "core/tensor_buf.h"

namespace am {

class Selector {
 public:
  virtual ~Selector() = default;
  virtual int kmax() const = 0;
  // rank_scores, scores, probs (N, n+m) -> slot_expert (N,kmax) I32 write, slot_gate (N,kmax) write.
  // rank_scores are the scores plus the aux-loss-free selection bias (or the scores themselves).
  virtual void select(Tensor rank_scores, Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) = 0;
  // dslot_gate (N,kmax) -> dscores (N,n+m) acc and/or dprobs (N,n+m) acc
  virtual void backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs, Tensor dscores,
                        Tensor dprobs) = 0;
  virtual int64_t capacity(int64_t n_tokens) const { return 0; }
};

// Top-k token choice over n true + m null experts. Gates (model.moe.selector.gate):
//   renormalized: softmax of the scores over the selected true experts (Mixtral for logits, AoE
//                 Alg. 2 for norms, AdaMoE's renormalisation with nulls);
//   softmax_all:  the selected experts' probabilities P (softmax over all n+m columns), not
//                 renormalised (AoE's megablocks release). Composed from existing ops: P is
//                 gathered at the slots as blocks of width 1 (gather_blocks with slot i -> i),
//                 and the backward scatters the gates' gradient into dP (scatter_blocks_add).
// capacity_factor > 0 caps each expert at ceil(CF * N * k / n) tokens (the rest are dropped).
class TopKSelector final : public Selector {
 public:
  TopKSelector(Backend& be, int k, int n_true, double capacity_factor, bool softmax_all = false)
      : be_(be), k_(k), n_true_(n_true), cf_(capacity_factor), softmax_all_(softmax_all) {}
  int kmax() const override { return k_; }
  void select(Tensor rank_scores, Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) override;
  void backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs, Tensor dscores,
                Tensor dprobs) override;
  int64_t capacity(int64_t n_tokens) const override;

 private:
  Backend& be_;
  Tensor identity_slots(int64_t n_slots);  // I32 (n_slots): 0, 1, ..., uploaded once per size
  int k_, n_true_;
  double cf_;
  bool softmax_all_;
  TensorBuf slots_;
};

// Top-p token choice (Huang et al. 2024): the shortest prefix of experts by probability whose sum
// reaches p (at most max_k); gates = the probabilities, or renormalised over the kept experts.
class TopPSelector final : public Selector {
 public:
  TopPSelector(Backend& be, double p, int max_k, bool renormalize)
      : be_(be), p_(p), max_k_(max_k), renorm_(renormalize) {}
  int kmax() const override { return max_k_; }
  void select(Tensor rank_scores, Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) override;
  void backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs, Tensor dscores,
                Tensor dprobs) override;

 private:
  Backend& be_;
  double p_;
  int max_k_;
  bool renorm_;
};

// Expert choice (Zhou et al. 2022): in every group of tokens (the micro-batch, or each sequence)
// each expert takes its round(CF * group / n) most probable tokens; gate = the probability.
class ExpertChoiceSelector final : public Selector {
 public:
  ExpertChoiceSelector(Backend& be, const MoeConfig& moe, int64_t group) : be_(be), moe_(moe), group_(group) {}
  int kmax() const override { return moe_.n_experts; }
  void select(Tensor rank_scores, Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) override;
  void backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs, Tensor dscores,
                Tensor dprobs) override;

 private:
  Backend& be_;
  MoeConfig moe_;
  int64_t group_;  // tokens per group; 0 = the whole micro-batch
};

}  // namespace am

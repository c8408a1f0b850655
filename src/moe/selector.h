// Selector: turns scores into slots (../shared/spec/selection.md §3). A selector fills, for every
// token, kmax() slots with an expert id (or -1 for an empty slot) and a gate weight. The gate
// weights are differentiable functions of the scores (and/or probs); the chosen set is not.
#pragma once

#include "core/backend.h"

namespace am {

class Selector {
 public:
  virtual ~Selector() = default;
  virtual int kmax() const = 0;
  // scores, probs (N,n) -> slot_expert (N,kmax) I32 write, slot_gate (N,kmax) write
  virtual void select(Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) = 0;
  // dslot_gate (N,kmax) -> dscores (N,n) acc and/or dprobs (N,n) acc
  virtual void backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor dscores,
                        Tensor dprobs) = 0;
};

// Top-k token choice: the k highest scores; gates = softmax over the k selected scores (for router
// logits this is Mixtral's renormalised top-k).
class TopKSelector final : public Selector {
 public:
  TopKSelector(Backend& be, int k) : be_(be), k_(k) {}
  int kmax() const override { return k_; }
  void select(Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) override {
    be_.topk_select(slot_expert, slot_gate, scores, scores, k_, static_cast<int>(scores.dim(1)));
  }
  void backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor dscores,
                Tensor dprobs) override {
    be_.topk_select_backward(dscores, dslot_gate, slot_expert, slot_gate, static_cast<int>(dscores.dim(1)));
  }

 private:
  Backend& be_;
  int k_;
};

}  // namespace am

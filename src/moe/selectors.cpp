#include "moe/selector.h"

#include <cmath>
#include <numeric>
#include <vector>

namespace am {

Tensor TopKSelector::identity_slots(int64_t n_slots) {
  if (slots_.empty() || slots_.t().numel() != n_slots) {
    std::vector<int32_t> ids(static_cast<size_t>(n_slots));
    std::iota(ids.begin(), ids.end(), 0);
    slots_ = TensorBuf(be_, DType::I32, {n_slots});
    be_.upload(slots_, ids.data());
  }
  return slots_;
}

// A (N,k) slot array seen as N*k rows of blocks of width 1 (for gather_blocks on P).
static Tensor slot_column(Tensor slot_gate) { return Tensor(slot_gate.data, slot_gate.dtype, {slot_gate.numel(), 1}); }

void TopKSelector::select(Tensor rank_scores, Tensor scores, Tensor probs, Tensor slot_expert, Tensor slot_gate) {
  be_.topk_select(slot_expert, slot_gate, rank_scores, scores, k_, n_true_);
  if (!softmax_all_) return;
  // gate[t][j] = P[t][slot_expert[t][j]]: P (N, n+m) is N rows of n+m blocks of width 1.
  // A null slot gets its probability too; it is never used (null experts compute nothing).
  be_.gather_blocks(slot_column(slot_gate), probs, identity_slots(slot_gate.numel()), slot_expert);
}

void TopKSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor, Tensor dscores,
                            Tensor dprobs) {
  if (!softmax_all_) {
    be_.topk_select_backward(dscores, dslot_gate, slot_expert, slot_gate, n_true_);
    return;
  }
  // dP[t][slot_expert[t][j]] += dgate[t][j] (a null or dropped slot's dgate is 0: no output)
  be_.scatter_blocks_add(dprobs, slot_column(dslot_gate), identity_slots(dslot_gate.numel()), slot_expert);
}

int64_t TopKSelector::capacity(int64_t n_tokens) const {
  if (cf_ <= 0) return 0;
  return static_cast<int64_t>(std::ceil(cf_ * static_cast<double>(n_tokens) * k_ / n_true_));
}

void TopPSelector::select(Tensor, Tensor, Tensor probs, Tensor slot_expert, Tensor slot_gate) {
  be_.topp_select(slot_expert, slot_gate, probs, p_, renorm_);
}

void TopPSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs, Tensor,
                            Tensor dprobs) {
  be_.topp_select_backward(dprobs, dslot_gate, slot_expert, slot_gate, probs, renorm_);
}

void ExpertChoiceSelector::select(Tensor, Tensor, Tensor probs, Tensor slot_expert, Tensor slot_gate) {
  const int64_t group = group_ > 0 ? group_ : probs.dim(0);
  be_.expert_choice_select(slot_expert, slot_gate, probs, group, expert_choice_capacity(moe_, group));
}

void ExpertChoiceSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor, Tensor, Tensor, Tensor dprobs) {
  be_.expert_choice_select_backward(dprobs, dslot_gate, slot_expert);
}

}  // namespace am

#include "moe/selector.h"

#include <cmath>

namespace am {

void TopKSelector::select(Tensor rank_scores, Tensor scores, Tensor, Tensor slot_expert, Tensor slot_gate) {
  be_.topk_select(slot_expert, slot_gate, rank_scores, scores, k_, n_true_);
}

void TopKSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor, Tensor dscores,
                            Tensor) {
  be_.topk_select_backward(dscores, dslot_gate, slot_expert, slot_gate, n_true_);
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

void ExpertChoiceSelector::backward(Tensor dslot_gate, Tensor slot_expert, Tensor, Tensor, Tensor,
                                    Tensor dprobs) {
  be_.expert_choice_select_backward(dprobs, dslot_gate, slot_expert);
}

}  // namespace am

// select.cu: kernels not written yet: each op throws a UserError naming itself.
#include "ops.cuh"
#include "stub.cuh"

namespace am::cuda {

void topk_select(Backend&, Tensor, Tensor, Tensor, Tensor, int, int) { not_yet("topk_select"); }
void topk_select_backward(Backend&, Tensor, Tensor, Tensor, Tensor, int) { not_yet("topk_select_backward"); }
void topp_select(Backend&, Tensor, Tensor, Tensor, double, bool) { not_yet("topp_select"); }
void topp_select_backward(Backend&, Tensor, Tensor, Tensor, Tensor, Tensor, bool) { not_yet("topp_select_backward"); }
void expert_choice_select(Backend&, Tensor, Tensor, Tensor, int64_t, int64_t) { not_yet("expert_choice_select"); }
void expert_choice_select_backward(Backend&, Tensor, Tensor, Tensor) { not_yet("expert_choice_select_backward"); }
void capacity_route(Backend&, Tensor, Tensor, Tensor, int, int64_t) { not_yet("capacity_route"); }
Backend::SlotStats slot_stats(Backend&, Tensor, int, int) { not_yet("slot_stats"); }

}  // namespace am::cuda

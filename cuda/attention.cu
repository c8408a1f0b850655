// attention.cu: kernels not written yet: each op throws a UserError naming itself.
#include "ops.cuh"
#include "stub.cuh"

namespace am::cuda {

void attention_forward(Backend&, Tensor, Tensor, Tensor, const AttnShape&) { not_yet("attention_forward"); }
void attention_backward(Backend&, Tensor, Tensor, Tensor, Tensor, Tensor, const AttnShape&) { not_yet("attention_backward"); }

}  // namespace am::cuda

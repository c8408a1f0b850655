// dense.cu: kernels not written yet: each op throws a UserError naming itself.
#include "ops.cuh"
#include "stub.cuh"

namespace am::cuda {

void embedding_forward(Backend&, Tensor, Tensor, Tensor) { not_yet("embedding_forward"); }
void embedding_backward(Backend&, Tensor, Tensor, Tensor) { not_yet("embedding_backward"); }
void rmsnorm_forward(Backend&, Tensor, Tensor, Tensor, Tensor, double) { not_yet("rmsnorm_forward"); }
void rmsnorm_backward(Backend&, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor) { not_yet("rmsnorm_backward"); }
void rope_forward(Backend&, Tensor, const AttnShape&, double) { not_yet("rope_forward"); }
void rope_backward(Backend&, Tensor, const AttnShape&, double) { not_yet("rope_backward"); }
void silu_forward(Backend&, Tensor, Tensor) { not_yet("silu_forward"); }
void silu_backward(Backend&, Tensor, Tensor, Tensor) { not_yet("silu_backward"); }
void swiglu_forward(Backend&, Tensor, Tensor, Tensor) { not_yet("swiglu_forward"); }
void swiglu_backward(Backend&, Tensor, Tensor, Tensor, Tensor, Tensor) { not_yet("swiglu_backward"); }

}  // namespace am::cuda

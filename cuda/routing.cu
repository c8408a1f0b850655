// routing.cu: kernels not written yet: each op throws a UserError naming itself.
#include "ops.cuh"
#include "stub.cuh"

namespace am::cuda {

int64_t route_build(Backend&, Tensor, Tensor, std::vector<int64_t>&, Tensor, int) { not_yet("route_build"); }
void gather_rows(Backend&, Tensor, Tensor, Tensor, int) { not_yet("gather_rows"); }
void combine(Backend&, Tensor, Tensor, Tensor, Tensor) { not_yet("combine"); }
void combine_backward(Backend&, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor) { not_yet("combine_backward"); }
void scatter_rows_add(Backend&, Tensor, Tensor, Tensor) { not_yet("scatter_rows_add"); }
void block_norms(Backend&, Tensor, Tensor, int, Backend::NormKind) { not_yet("block_norms"); }
void block_norms_backward(Backend&, Tensor, Tensor, Tensor, Tensor, int, Backend::NormKind) { not_yet("block_norms_backward"); }
void gather_blocks(Backend&, Tensor, Tensor, Tensor, Tensor) { not_yet("gather_blocks"); }
void scatter_blocks_add(Backend&, Tensor, Tensor, Tensor, Tensor) { not_yet("scatter_blocks_add"); }

}  // namespace am::cuda

// rows.cu: kernels not written yet: each op throws a UserError naming itself.
#include "ops.cuh"
#include "stub.cuh"

namespace am::cuda {

void cross_entropy_forward(Backend&, Tensor, Tensor, Tensor) { not_yet("cross_entropy_forward"); }
void cross_entropy_forward_backward(Backend&, Tensor, Tensor, Tensor, double) { not_yet("cross_entropy_forward_backward"); }
void softmax_rows(Backend&, Tensor, Tensor) { not_yet("softmax_rows"); }
void softmax_rows_backward(Backend&, Tensor, Tensor, Tensor) { not_yet("softmax_rows_backward"); }
void logsumexp_rows(Backend&, Tensor, Tensor) { not_yet("logsumexp_rows"); }
void axpy_rows(Backend&, Tensor, Tensor, Tensor, double) { not_yet("axpy_rows"); }
std::vector<double> column_sums(Backend&, Tensor) { not_yet("column_sums"); }
void add_to_rows(Backend&, Tensor, const std::vector<double>&) { not_yet("add_to_rows"); }
double entropy_sum(Backend&, Tensor) { not_yet("entropy_sum"); }
void entropy_backward(Backend&, Tensor, Tensor, double) { not_yet("entropy_backward"); }
void broadcast_columns(Backend&, Tensor, Tensor, int64_t) { not_yet("broadcast_columns"); }
void copy_columns(Backend&, Tensor, Tensor, int64_t) { not_yet("copy_columns"); }

}  // namespace am::cuda

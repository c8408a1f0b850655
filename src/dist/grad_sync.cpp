#include "dist/grad_sync.h"

#include <cmath>

namespace am {
namespace {

// Calls f(first, last, expert) for each maximal run of consecutive trainable tensors of one kind.
template <typename F>
void for_each_bucket(const ParamTable& t, F f) {
  int i = 0;
  while (i < t.size()) {
    if (!t.at(i).trainable) {
      ++i;
      continue;
    }
    const bool expert = t.at(i).expert >= 0;
    int j = i;
    while (j + 1 < t.size() && t.at(j + 1).trainable && (t.at(j + 1).expert >= 0) == expert) ++j;
    f(i, j, expert);
    i = j + 1;
  }
}

// The gradient tensors [first, last] as one flat view (they are contiguous in the buffer).
Tensor span(ParamStore& store, int first, int last) {
  const ParamSpec &a = store.table().at(first), &b = store.table().at(last);
  Tensor g = store.all_grads();
  const int64_t begin = a.offset, end = b.offset + b.numel();
  return Tensor(static_cast<char*>(g.data) + static_cast<size_t>(begin) * dtype_size(g.dtype), g.dtype,
                {end - begin});
}

}  // namespace

void reduce_gradients(ParamStore& store, const DistContext& dist) {
  if (dist.world_size() == 1) return;
  for_each_bucket(store.table(), [&](int first, int last, bool expert) {
    Comm* comm = expert ? dist.replica : dist.world;
    if (comm->size() > 1) comm->all_reduce_sum(span(store, first, last));
  });
  store.backend().scale(store.all_grads(), 1.0 / dist.world_size());
}

double global_grad_norm(ParamStore& store, const DistContext& dist) {
  double dense = 0, experts = 0;
  for_each_bucket(store.table(), [&](int first, int last, bool expert) {
    (expert ? experts : dense) += store.backend().sum_squares(span(store, first, last));
  });
  if (dist.ep && dist.ep->size() > 1) experts = dist.ep->all_reduce_sum(experts);
  return std::sqrt(dense + experts);
}

}  // namespace am

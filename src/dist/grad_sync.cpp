#include "dist/grad_sync.h"

#include <cmath>

namespace am {
namespace {

// Calls f(a, b, expert) for each maximal run [a, b] of consecutive trainable tensors of one kind
// within [first, last].
template <typename F>
void for_each_bucket(const ParamTable& t, int first, int last, F f) {
  int i = first;
  while (i <= last) {
    if (!t.at(i).trainable) {
      ++i;
      continue;
    }
    const bool expert = t.at(i).expert >= 0;
    int j = i;
    while (j + 1 <= last && t.at(j + 1).trainable && (t.at(j + 1).expert >= 0) == expert) ++j;
    f(i, j, expert);
    i = j + 1;
  }
}

// The gradient tensors [first, last] as one flat view (they are contiguous in the buffer).
Tensor span(ParamStore& store, int first, int last) {
  const ParamSpec &a = store.table().at(first), &b = store.table().at(last);
  Tensor g = store.all_grads();
  const int64_t begin = a.offset, end = b.offset + b.numel();
  return Tensor(static_cast<char*>(g.data) + static_cast<size_t>(begin) * dtype_size(g.dtype), g.dtype, {end - begin});
}

}  // namespace

GradReducer::GradReducer(ParamStore& store, const DistContext& dist)
    : store_(store), dist_(dist), started_(static_cast<size_t>(store.table().size()), 0) {}

void GradReducer::start(int first, int last) {
  if (dist_.world_size() == 1) return;
  for_each_bucket(store_.table(), first, last, [&](int a, int b, bool expert) {
    Comm* comm = expert ? dist_.replica : dist_.world;
    if (comm->size() > 1) comm->all_reduce_sum_start(span(store_, a, b));
  });
  for (int i = first; i <= last; ++i) started_[i] = 1;
}

void GradReducer::ready(int first, int last) { start(first, last); }

void GradReducer::finish() {
  if (dist_.world_size() == 1) return;
  for (int i = 0; i < store_.table().size(); ++i) {  // runs of tensors not started yet
    if (started_[i]) continue;
    int j = i;
    while (j + 1 < store_.table().size() && !started_[j + 1]) ++j;
    start(i, j);
    i = j;
  }
  dist_.world->wait();
  if (dist_.replica != dist_.world) dist_.replica->wait();
  store_.backend().scale(store_.all_grads(), 1.0 / dist_.world_size());
}

double global_grad_norm(ParamStore& store, const DistContext& dist) {
  double dense = 0, experts = 0;
  for_each_bucket(store.table(), 0, store.table().size() - 1, [&](int first, int last, bool expert) {
    (expert ? experts : dense) += store.backend().sum_squares(span(store, first, last));
  });
  if (dist.ep && dist.ep->size() > 1) experts = dist.ep->all_reduce_sum(experts);
  return std::sqrt(dense + experts);
}

void global_grad_norm_sq(ParamStore& store, const DistContext* dist, Tensor norm_sq, Tensor spans) {
  Backend& be = store.backend();
  AM_CHECK(norm_sq.dtype == DType::F64 && norm_sq.numel() == 2, "global_grad_norm_sq into {}", norm_sq.shape_str());
  if (!dist) {
    be.sum_squares_accumulate(Tensor(norm_sq.data, DType::F64, {1}), store.all_grads());
    return;
  }
  be.sum_squares_spans(norm_sq, store.all_grads(), spans);
  if (dist->ep && dist->ep->size() > 1)
    dist->ep->all_reduce_sum(Tensor(static_cast<double*>(norm_sq.data) + 1, DType::F64, {1}));
}

std::vector<SumSquaresSpan> grad_norm_spans(const ParamTable& t) {
  std::vector<SumSquaresSpan> rows;
  if (t.size() == 0) return rows;
  for_each_bucket(t, 0, t.size() - 1, [&](int first, int last, bool expert) {
    const ParamSpec &a = t.at(first), &b = t.at(last);
    rows.push_back(SumSquaresSpan{a.offset, b.offset + b.numel() - a.offset, expert ? 1 : 0, 0});
  });
  return rows;
}

}  // namespace am

// Which slots reach an expert (null experts and the capacity factor), and slot counts for the
// load metrics. ../shared/spec/selection.md §3 a) (capacity) and d) (null experts), §5.
#pragma once

#include <cstdint>
#include <vector>

namespace am::cpu {

// routed (N*kmax) write = slot_expert, except -1 for ids >= n_true (null experts) and, when
// capacity > 0, for every assignment of an expert e beyond its `capacity` preferred ones by
// scores[t][e] (cpu/select_order.h: higher first, ties to the lower slot index t*kmax + j).
// capacity == 0: no cap. scores (N, n_scores), n_scores >= n_true; ids < -1 are AM_CHECK failures.
// Cost O(N kmax) plus a linear-time selection (nth_element) per over-full expert; experts run in
// parallel, each writing only its own slots.
template <typename T>
void capacity_route(int32_t* routed, const int32_t* slot_expert, const T* scores, int64_t N, int64_t kmax,
                    int64_t n_scores, int64_t n_true, int64_t capacity);

// per_id (n_total) write = the number of slots holding each id; returns the number of rows with
// no id in [0, n_true). Ids outside [-1, n_total) are AM_CHECK failures.
int64_t slot_stats(std::vector<int64_t>& per_id, const int32_t* slot_expert, int64_t N, int64_t kmax, int64_t n_total,
                   int64_t n_true);

}  // namespace am::cpu

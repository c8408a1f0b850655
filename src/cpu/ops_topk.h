// Top-k expert selection with softmax-renormalised gates (Mixtral's router; AoE's norm scores).
#pragma once

#include <cstdint>

namespace am::cpu {

// scores (N,n) -> slot_expert (N,k) write, slot_gate (N,k) write. Each row keeps its k largest
// scores in descending order, ties to the lower expert index (a NaN score is never preferred to
// a number); the gates are the softmax of the k selected scores. Requires 1 <= k <= n.
template <typename T>
void topk_select(int32_t* slot_expert, T* slot_gate, const T* scores, int64_t N, int64_t n,
                 int64_t k);

// dscores (N,n) acc: for each filled slot j, dscores[e_j] += g_j (dg_j - sum_l g_l dg_l), the sum
// over the filled slots l of the row. Slots with expert -1 are skipped.
template <typename T>
void topk_select_backward(T* dscores, const T* dslot_gate, const int32_t* slot_expert,
                          const T* slot_gate, int64_t N, int64_t n, int64_t k);

}  // namespace am::cpu

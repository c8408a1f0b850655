// Top-k expert selection with softmax-renormalised gates (Mixtral's router; AoE's norm scores),
// with AdaMoE null experts (ids >= n_true) and separate rank / gate scores (selection bias).
#pragma once

#include <cstdint>

namespace am::cpu {

// rank_scores, gate_scores (N,n_total) -> slot_expert (N,k) write, slot_gate (N,k) write. Each
// row keeps its k largest rank_scores in descending order (cpu/select_order.h: ties to the lower
// id, NaN last). Null ids (>= n_true) keep their slot with gate 0; the true ones get the softmax
// of their gate_scores over the selected true experts (max subtracted, sums in double). A row
// whose k slots are all null gets all-zero gates. rank_scores may equal gate_scores.
// Requires 1 <= k <= n_total and 1 <= n_true <= n_total.
template <typename T>
void topk_select(int32_t* slot_expert, T* slot_gate, const T* rank_scores, const T* gate_scores, int64_t N,
                 int64_t n_total, int64_t k, int64_t n_true);

// dgate_scores (N,n_total) acc: for each slot j holding a true id (0 <= e_j < n_true),
// dgate_scores[e_j] += g_j (dg_j - sum_l g_l dg_l), the sum over the row's true slots l. Empty
// (-1) and null slots get and give nothing. Ids outside [-1, n_total) are AM_CHECK failures.
template <typename T>
void topk_select_backward(T* dgate_scores, const T* dslot_gate, const int32_t* slot_expert, const T* slot_gate,
                          int64_t N, int64_t n_total, int64_t k, int64_t n_true);

}  // namespace am::cpu

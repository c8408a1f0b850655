// Selections with a variable number of experts per token: top-p token choice (Huang et al. 2024)
// and expert choice (Zhou et al. 2022). Orders follow cpu/select_order.h (higher first, ties to
// the lower index, NaN last). ../shared/spec/selection.md §3 b) and c).
#pragma once

#include <cstdint>

namespace am::cpu {

// probs (N,n) -> slot_expert (N,kmax) write, slot_gate (N,kmax) write. Per row, experts in
// preference order; keep the shortest prefix whose sum (in double, in that order) reaches p -- the
// expert that crosses p is kept -- but at most kmax. Unused slots: -1 with gate 0. Gates probs[e],
// or probs[e] / S with S the double sum of the kept probs when renormalize. Requires 0 < p <= 1
// and kmax >= 1; when the whole row sums to less than p, min(n, kmax) experts are kept.
template <typename T>
void topp_select(int32_t* slot_expert, T* slot_gate, const T* probs, int64_t N, int64_t n, int64_t kmax, double p,
                 bool renormalize);

// dprobs (N,n) acc. Raw gates: dprobs[e] += dg. Renormalised: dprobs[e] += (dg_e - sum_l g_l dg_l)
// / S, with S recomputed from probs over the filled slots in slot order (the forward's sum).
template <typename T>
void topp_select_backward(T* dprobs, const T* dslot_gate, const int32_t* slot_expert, const T* slot_gate,
                          const T* probs, int64_t N, int64_t n, int64_t kmax, bool renormalize);

// probs (N,n) -> slot_expert, slot_gate (N,n) write. Rows in groups of `group` consecutive rows;
// in each group every expert e takes its `capacity` preferred rows by probs[t][e] (ties: lower
// row): slot_expert[t][e] = e and slot_gate[t][e] = probs[t][e] there, -1 and 0 elsewhere.
// Requires group >= 1, N % group == 0, 0 <= capacity <= group. One (group, expert) pair per task.
template <typename T>
void expert_choice_select(int32_t* slot_expert, T* slot_gate, const T* probs, int64_t N, int64_t n, int64_t group,
                          int64_t capacity);

// dprobs (N,n) acc += dslot_gate where slot_expert is filled (slot_expert[t][e] is e or -1).
template <typename T>
void expert_choice_select_backward(T* dprobs, const T* dslot_gate, const int32_t* slot_expert, int64_t N, int64_t n);

}  // namespace am::cpu

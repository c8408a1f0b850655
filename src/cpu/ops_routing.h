// Routing: from per-token slots (N,kmax) to an expert-major list of A assignments and back.
// A slot is (t, j) with index t*kmax + j; slot_expert holds an expert id or -1 (empty slot).
#pragma once

#include <cstdint>
#include <vector>

namespace am::cpu {

// Stable counting sort of the filled slots by expert. Writes assign_slot[0, A) (capacity
// entries available; entries past A are left untouched) with the slot index of each assignment,
// expert-major and by slot index within an expert; slot_assign (N*kmax) with the position of each
// slot in that list or -1; offsets (n_experts + 1). Returns A. Expert ids outside [-1, n_experts)
// and A > capacity are AM_CHECK failures.
int64_t route_build(int32_t* assign_slot, int64_t capacity, int32_t* slot_assign, std::vector<int64_t>& offsets,
                    const int32_t* slot_expert, int64_t N, int64_t kmax, int64_t n_experts);

// out (A,d) write: out[a] = x[assign_slot[a] / kmax]; x (N,d).
template <typename T>
void gather_rows(T* out, const T* x, const int32_t* assign_slot, int64_t A, int64_t N, int64_t kmax, int64_t d);

// y (N,d) write: y[t] = sum over filled slots j, in j order, of slot_gate[t][j] *
// eo[slot_assign[t][j]] (in double; a row with no filled slot is 0). eo (A,d), slot_gate and
// slot_assign (N,kmax).
template <typename T>
void combine(T* y, const T* eo, const T* slot_gate, const int32_t* slot_assign, int64_t N, int64_t kmax, int64_t A,
             int64_t d);

// deo (A,d) write = slot_gate[t][j] * dy[t] for the slot (t, j) that owns row a; every row of deo
// must be owned by exactly one slot (AM_CHECK). dslot_gate (N,kmax) write = <dy[t], eo[a]>, 0 for
// empty slots.
template <typename T>
void combine_backward(T* deo, T* dslot_gate, const T* dy, const T* eo, const T* slot_gate, const int32_t* slot_assign,
                      int64_t N, int64_t kmax, int64_t A, int64_t d);

// dx (N,d) acc: dx[t] += sum over filled slots j, in j order (in double), of
// src[slot_assign[t][j]].
template <typename T>
void scatter_rows_add(T* dx, const T* src, const int32_t* slot_assign, int64_t N, int64_t kmax, int64_t A, int64_t d);

}  // namespace am::cpu

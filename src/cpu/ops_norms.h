// Activation norms of AoE (../shared/spec/selection.md §2 c) and §6): per-row block norms of the
// latent cache C (N, n*dl), the gather / scatter of (token, expert) blocks that the selected
// experts reuse, and two column writers (learnable null-expert scores, score concatenation).
#pragma once

#include "core/backend.h"

#include <cstdint>

namespace am::cpu {

using NormKind = Backend::NormKind;

// s (N,S) columns [0, nb) write: s[t][b] = ||c[t][b*dl, (b+1)*dl)|| (L2, L1 or Linf), accumulated
// in double; c (N, nb*dl). Other columns of s are untouched.
template <typename T>
void block_norms(T* s, int64_t S, const T* c, int64_t N, int64_t nb, int64_t dl, NormKind kind);

// dc (N, nb*dl) acc += ds[t][b] * d||c_b||/dc_b: L2 c_b / s[t][b] (0 when s[t][b] == 0), L1
// sign(c_b) (0 at 0), Linf sign(c) at the first index of the largest |c| in the block (0 if that
// c is 0), 0 elsewhere. ds, s (N,S) read in columns [0, nb).
template <typename T>
void block_norms_backward(T* dc, const T* ds, const T* c, const T* s, int64_t S, int64_t N, int64_t nb, int64_t dl,
                          NormKind kind);

// out (A,dl) write: out[a] = block e of row t of c (N, n*dl), with slot = assign_slot[a],
// t = slot / kmax, e = slot_expert[slot]. Slots outside [0, N*kmax) or ids outside [0, n) are
// AM_CHECK failures.
template <typename T>
void gather_blocks(T* out, const T* c, const int32_t* assign_slot, const int32_t* slot_expert, int64_t A, int64_t N,
                   int64_t kmax, int64_t n, int64_t dl);

// dc (N, n*dl) acc: block e of row t += src[a] for every a (the adjoint of gather_blocks). Rows
// run in parallel; within a row the a's are added in increasing order.
template <typename T>
void scatter_blocks_add(T* dc, const T* src, const int32_t* assign_slot, const int32_t* slot_expert, int64_t A,
                        int64_t N, int64_t kmax, int64_t n, int64_t dl);

// x (N,C) columns [col, col + m) write = v (m) in every row.
template <typename T>
void broadcast_columns(T* x, const T* v, int64_t N, int64_t C, int64_t m, int64_t col);

// dst (N,C) columns [col, col + w) write = src (N,w).
template <typename T>
void copy_columns(T* dst, const T* src, int64_t N, int64_t C, int64_t w, int64_t col);

}  // namespace am::cpu

// Causal multi-head attention with grouped-query heads, naive O(T^2) per head, scale 1/sqrt(hd).
// qkv (B,T,qkv_dim) rows are packed [q (H*hd) | k (Hkv*hd) | v (Hkv*hd)]; query head h reads
// kv head h / (H / Hkv). All arithmetic is in double; results are rounded to T once.
#pragma once

#include "core/backend.h"

namespace am::cpu {

// out (B,T,H*hd) write; lse (B,H,T) write: log-sum-exp of the scaled scores of each query row.
// One (b, h) pair per task.
template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, const AttnShape& s);

// dqkv (B,T,qkv_dim) write (every element); dout (B,T,H*hd); out and lse as saved by the forward.
// The probabilities are recomputed from q, k and lse: p_ts = exp(scale q_t.k_s - lse_t), and
//   dv_s += p_ts dout_t ;  ds_ts = p_ts (dout_t.v_s - D_t) with D_t = dout_t.out_t ;
//   dq_t += scale ds_ts k_s ;  dk_s += scale ds_ts q_t.
// One (b, kv head) pair per task, which owns its query heads' dq and the kv head's dk and dv,
// summing the query heads of the group in order.
template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse, const AttnShape& s);

// Decode attention: one query row q (H*hd) against rows [0, n) of k_cache and v_cache (rows of
// Hkv*hd); out (H*hd) write. The arithmetic of attention_forward's row n-1, in the same order (so
// in double the same bits). One head per task.
template <typename T>
void attention_decode(T* out, const T* q, const T* k_cache, const T* v_cache, int64_t n, const AttnShape& s);

}  // namespace am::cpu

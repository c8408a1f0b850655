// routing.cu: from per-token slots (N, kmax) to the expert-major assignment list and back
// (route_build, gather_rows, combine, scatter_rows_add), and the AoE activation norms with their
// block gather / scatter. The executable spec is src/cpu/ops_routing.cpp and ops_norms.cpp.
//
// Kernel design (deterministic by construction: no floating-point atomics anywhere):
//  - route_build: a stable CUB radix sort of (expert id, slot index) pairs, slots listed in
//    increasing order, is the CPU's stable counting sort; offsets are lower bounds in the sorted
//    ids (one binary search per expert) and come back to the host with the first bad slot.
//  - gather_rows / gather_blocks: one thread per output element.
//  - combine / scatter_rows_add: one thread per (token, column); each sums the token's slots in
//    slot order, in double, exactly like the CPU (products of two floats are exact in double).
//  - combine_backward: one warp per slot; the dot product <dy, eo> is a per-lane double sum and a
//    fixed butterfly (the CPU sums in column order: equal to double rounding, not bit for bit).
//  - block_norms(_backward): one warp per (row, block), fixed reduction order; Linf's max and
//    its first index are exact.
//  - scatter_blocks_add: a stable sort of (block id, a) pairs groups the a's of each target block
//    in increasing a; one warp per block adds them in that order, column by column: the CPU's
//    float sums bit for bit, even when two assignments share a block.
// Out-of-range indices (an AM_CHECK failure on the CPU) are never followed: gathers write NaN
// there, scatters skip them; route_build checks its ids, as it returns to the host anyway.
//
// bf16 storage (core/backend.h; CudaBackend::native_bf16 names the ops): gather_rows,
// gather_blocks, combine, combine_backward, block_norms and block_norms_backward take BF16 tensors
// where the model keeps its activations in bf16 (routing_bf16.cuh: the kernels are templated on
// the storage type, widen what they read, compute as in fp32 and round once on store; a gather
// between equal types copies bits). Each op's comment says which arguments are native; a BF16
// tensor in another argument goes through an fp32 copy (core/f32_copies.h, as with_f32 does).
// scatter_rows_add and scatter_blocks_add get fp32 tensors from the model and stay fp32-only.
#include "check.cuh"
#include "core/f32_copies.h"
#include "core/op_checks.h"
#include "launch.cuh"
#include "moe_common.cuh"
#include "ops.cuh"
#include "routing_bf16.cuh"

#include <cmath>

namespace am::cuda {

using namespace moe;
using NormKind = Backend::NormKind;

namespace {

// ---- routing ----

// Key of slot i: its expert id, n_experts for an empty slot (-1), n_experts + 1 for a bad id.
__global__ void route_keys_kernel(uint32_t* keys, int32_t* vals, const int32_t* slot_expert, int64_t slots,
                                  int n_experts) {
  for (int64_t i = thread_id(); i < slots; i += thread_stride()) {
    const int32_t e = slot_expert[i];
    keys[i] = e >= 0 && e < n_experts ? uint32_t(e) : (e == -1 ? uint32_t(n_experts) : uint32_t(n_experts) + 1);
    vals[i] = static_cast<int32_t>(i);
  }
}

// out[e] = the number of sorted keys < e, for e in [0, n_experts + 1]; out[n_experts + 2] = the
// first bad slot (the smallest slot index with key n_experts + 1, by stability), or -1.
__global__ void route_offsets_kernel(int64_t* out, const uint32_t* sorted_keys, const int32_t* sorted_vals,
                                     int64_t slots, int n_experts) {
  for (int64_t e = thread_id(); e <= n_experts + 1; e += thread_stride()) {
    int64_t lo = 0, hi = slots;  // lower bound of e
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (sorted_keys[mid] < uint64_t(e)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    out[e] = lo;
    if (e == n_experts + 1) out[n_experts + 2] = lo < slots ? sorted_vals[lo] : -1;
  }
}

__global__ void route_invert_kernel(int32_t* slot_assign, const int32_t* sorted_vals, int64_t A) {
  for (int64_t a = thread_id(); a < A; a += thread_stride()) slot_assign[sorted_vals[a]] = static_cast<int32_t>(a);
}

// out (A, d) = x[assign_slot[a] / kmax]
template <typename TO, typename TX>
__global__ void gather_rows_kernel(TO* out, const TX* x, const int32_t* assign_slot, int64_t A, int64_t d, int kmax,
                                   int64_t slots) {
  for (int64_t idx = thread_id(); idx < A * d; idx += thread_stride()) {
    const int64_t a = idx / d, c = idx % d, slot = assign_slot[a];
    out[idx] = slot >= 0 && slot < slots ? convert_element<TO>(x[(slot / kmax) * d + c]) : from_float<TO>(NAN);
  }
}

// Token t's column c of combine and scatter_rows_add: the double sum over its filled slots j, in
// slot order, of gate[j] * rows[a, c] (gate[j] = 1 without gates), a = sa[j] (sa: the token's kmax
// slots). NaN when a slot names no row of rows: an AM_CHECK failure on the CPU.
template <typename TR>
__device__ double slot_sum(const TR* rows, const float* gate, const int32_t* sa, int kmax, int64_t c, int64_t d,
                           int64_t A) {
  double acc = 0;
  for (int j = 0; j < kmax; ++j) {
    const int64_t a = sa[j];
    if (a < -1 || a >= A) return NAN;
    if (a >= 0) acc += (gate ? double(gate[j]) : 1.0) * to_float(rows[a * d + c]);
  }
  return acc;
}

// y (N, d) write: per (t, c) the gated slot sum.
template <typename TY, typename TE>
__global__ void combine_kernel(TY* y, const TE* eo, const float* slot_gate, const int32_t* slot_assign, int64_t N,
                               int64_t d, int kmax, int64_t A) {
  for (int64_t idx = thread_id(); idx < N * d; idx += thread_stride()) {
    const int64_t t = idx / d, c = idx % d;
    const double acc = slot_sum(eo, slot_gate + t * kmax, slot_assign + t * kmax, kmax, c, d, A);
    y[idx] = from_float<TY>(static_cast<float>(acc));
  }
}

// One warp per slot i: deo[a] = gate * dy[t], dslot_gate[i] = <dy[t], eo[a]>.
template <typename TE>
__global__ void combine_backward_kernel(float* deo, float* dslot_gate, const float* dy, const TE* eo,
                                        const float* slot_gate, const int32_t* slot_assign, int64_t slots, int kmax,
                                        int64_t A, int64_t d) {
  for (int64_t i = warp_id(); i < slots; i += warp_stride()) {
    const int64_t a = slot_assign[i];
    if (a < 0 || a >= A) {
      if (lane_id() == 0) dslot_gate[i] = a == -1 ? 0.f : NAN;
      continue;
    }
    const double gate = slot_gate[i];
    const float* g = dy + (i / kmax) * d;
    const TE* e = eo + a * d;
    float* de = deo + a * d;
    double dot = 0;
    for (int64_t c = lane_id(); c < d; c += 32) {
      dot += double(g[c]) * to_float(e[c]);
      de[c] = static_cast<float>(gate * g[c]);
    }
    dot = warp_sum(dot);
    if (lane_id() == 0) dslot_gate[i] = static_cast<float>(dot);
  }
}

// dx (N, d) acc: per (t, c) the slot sum of the token's slots' rows.
__global__ void scatter_rows_kernel(float* dx, const float* src, const int32_t* slot_assign, int64_t N, int64_t d,
                                    int kmax, int64_t A) {
  for (int64_t idx = thread_id(); idx < N * d; idx += thread_stride()) {
    const int64_t t = idx / d, c = idx % d;
    const double acc = slot_sum(src, nullptr, slot_assign + t * kmax, kmax, c, d, A);
    dx[idx] = static_cast<float>(double(dx[idx]) + acc);
  }
}

// ---- activation norms ----

__device__ __forceinline__ float sign_of(float v) { return v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f); }

// s (N, S) columns [0, nb): one warp per (t, b) = w, block c[w*dl, (w+1)*dl).
template <typename TC>
__global__ void block_norms_kernel(float* s, int64_t S, const TC* c, int64_t N, int nb, int64_t dl, NormKind kind) {
  for (int64_t w = warp_id(); w < N * nb; w += warp_stride()) {
    const TC* cb = c + w * dl;
    double acc = 0;
    for (int64_t i = lane_id(); i < dl; i += 32) {
      const double v = to_float(cb[i]);
      switch (kind) {
        case NormKind::L2:
          acc += v * v;
          break;
        case NormKind::L1:
          acc += fabs(v);
          break;
        case NormKind::Linf:
          acc = acc < fabs(v) ? fabs(v) : acc;
          break;  // std::max: NaN ignored
      }
    }
    if (kind == NormKind::Linf) {
      for (int off = 16; off > 0; off >>= 1) {
        const double o = __shfl_xor_sync(kFullMask, acc, off);
        acc = acc < o ? o : acc;
      }
    } else {
      acc = warp_sum(acc);
    }
    if (lane_id() == 0) s[(w / nb) * S + w % nb] = static_cast<float>(kind == NormKind::L2 ? sqrt(acc) : acc);
  }
}

// The CPU's Linf argmax: `at = 0; for i: if |c_i| > |c_at|: at = i`. NaNs never win a strict
// comparison, so this is the first index of the largest non-NaN |c|, or 0 when c_0 is NaN (or
// every entry is). Lanes scan their entries in increasing order; the butterfly keeps the larger
// value and, on equal values, the lower index: the same index in every lane.
template <typename TC>
__device__ int64_t linf_first_argmax(const TC* cb, int64_t dl) {
  int64_t bi = -1;
  float bv = 0.f;
  for (int64_t i = lane_id(); i < dl; i += 32) {
    const float v = fabsf(to_float(cb[i]));
    if (isnan(v)) continue;
    if (bi < 0 || v > bv) {
      bi = i;
      bv = v;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    const int64_t oi = __shfl_xor_sync(kFullMask, bi, off);
    const float ov = __shfl_xor_sync(kFullMask, bv, off);
    if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
      bi = oi;
      bv = ov;
    }
  }
  return (bi < 0 || isnan(to_float(cb[0]))) ? 0 : bi;
}

// dc (N, nb*dl) acc: one warp per (t, b) = w.
template <typename TC>
__global__ void block_norms_backward_kernel(float* dc, const float* ds, const TC* c, const float* s, int64_t S,
                                            int64_t N, int nb, int64_t dl, NormKind kind) {
  for (int64_t w = warp_id(); w < N * nb; w += warp_stride()) {
    const TC* cb = c + w * dl;
    float* db = dc + w * dl;
    const int64_t at_s = (w / nb) * S + w % nb;
    const float g = ds[at_s];
    switch (kind) {
      case NormKind::L2: {
        const float norm = s[at_s];
        if (norm == 0.f) break;
        const float k = g / norm;
        for (int64_t i = lane_id(); i < dl; i += 32) db[i] += k * to_float(cb[i]);
        break;
      }
      case NormKind::L1:
        for (int64_t i = lane_id(); i < dl; i += 32) db[i] += g * sign_of(to_float(cb[i]));
        break;
      case NormKind::Linf: {
        const int64_t at = linf_first_argmax(cb, dl);
        if (lane_id() == 0) db[at] += g * sign_of(to_float(cb[at]));
        break;
      }
    }
  }
}

// out (A, dl) = block e of row t of c (N, n*dl), slot = assign_slot[a].
template <typename TO, typename TC>
__global__ void gather_blocks_kernel(TO* out, const TC* c, const int32_t* assign_slot, const int32_t* slot_expert,
                                     int64_t A, int64_t slots, int kmax, int n, int64_t dl) {
  for (int64_t idx = thread_id(); idx < A * dl; idx += thread_stride()) {
    const int64_t a = idx / dl, j = idx % dl, slot = assign_slot[a];
    const int64_t e = slot >= 0 && slot < slots ? slot_expert[slot] : -1;
    out[idx] = e >= 0 && e < n ? convert_element<TO>(c[((slot / kmax) * n + e) * dl + j]) : from_float<TO>(NAN);
  }
}

// Key of assignment a: its target block t*n + e, or n_blocks (after every block) when invalid.
__global__ void block_keys_kernel(uint32_t* keys, int32_t* vals, const int32_t* assign_slot, const int32_t* slot_expert,
                                  int64_t A, int64_t slots, int kmax, int n, uint32_t n_blocks) {
  for (int64_t a = thread_id(); a < A; a += thread_stride()) {
    const int64_t slot = assign_slot[a];
    const int64_t e = slot >= 0 && slot < slots ? slot_expert[slot] : -1;
    keys[a] = e >= 0 && e < n ? static_cast<uint32_t>((slot / kmax) * n + e) : n_blocks;
    vals[a] = static_cast<int32_t>(a);
  }
}

// One warp per run of equal keys (sorted positions [q, r)): block += src[a] for the run's a's in
// increasing order, one column per lane.
__global__ void scatter_blocks_kernel(float* dc, const float* src, const uint32_t* sorted_keys,
                                      const int32_t* sorted_vals, int64_t A, int64_t dl, uint32_t n_blocks) {
  for (int64_t q = warp_id(); q < A; q += warp_stride()) {
    const uint32_t blk = sorted_keys[q];
    if (blk >= n_blocks || (q > 0 && sorted_keys[q - 1] == blk)) continue;  // invalid, or not a run start
    int64_t r = q + 1;
    while (r < A && sorted_keys[r] == blk) ++r;
    float* d = dc + int64_t(blk) * dl;
    for (int64_t j = lane_id(); j < dl; j += 32) {
      float acc = d[j];
      for (int64_t u = q; u < r; ++u) acc += src[int64_t(sorted_vals[u]) * dl + j];
      d[j] = acc;
    }
  }
}

// ---- the geometry of the block ops (Backend has checked it) ----

// The geometry shared by gather_blocks and scatter_blocks_add: blocks (A,dl), c (N, n*dl).
struct BlockGeometry {
  int64_t A, dl, N, kmax, n;
};

BlockGeometry block_geometry(const Tensor& blocks, const Tensor& c, const Tensor& slot_expert) {
  const int64_t dl = last_dim(blocks);
  return {row_count(blocks), dl, row_count(slot_expert), last_dim(slot_expert), last_dim(c) / dl};
}

}  // namespace

// ---- routing ----

int64_t route_build(Backend& be, Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                    Tensor slot_expert, int n_experts) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  const int64_t slots = N * kmax;
  expert_offsets.assign(static_cast<size_t>(n_experts) + 1, 0);
  if (slots == 0) return 0;
  AM_CHECK(slots <= INT32_MAX, "route_build over {} slots: more than int32 indices hold", slots);

  Scratch<uint32_t> keys(be, slots), sorted_keys(be, slots);
  Scratch<int32_t> vals(be, slots), sorted_vals(be, slots);
  launch<route_keys_kernel>(blocks_for(slots), moe::kThreads, 0, compute_stream(), keys.ptr, vals.ptr,
                            slot_expert.as<int32_t>(), slots, n_experts);
  sort_pairs(be, keys.ptr, sorted_keys.ptr, vals.ptr, sorted_vals.ptr, slots, bits_for(uint64_t(n_experts) + 1));
  Scratch<int64_t> found(be, n_experts + 3);
  launch<route_offsets_kernel>(blocks_for(n_experts + 2), moe::kThreads, 0, compute_stream(), found.ptr,
                               sorted_keys.ptr, sorted_vals.ptr, slots, n_experts);
  std::vector<int64_t> host(static_cast<size_t>(n_experts) + 3);
  copy_to_host(host.data(), found.ptr, sizeof(int64_t) * host.size());
  const int64_t bad = host[static_cast<size_t>(n_experts) + 2];
  if (bad >= 0) {
    int32_t id = 0;
    copy_to_host(&id, slot_expert.as<int32_t>() + bad, sizeof(id));
    AM_CHECK(false, "slot {} holds expert {}, outside [-1, {})", bad, id, n_experts);
  }
  for (int e = 0; e <= n_experts; ++e) expert_offsets[static_cast<size_t>(e)] = host[static_cast<size_t>(e)];
  const int64_t A = expert_offsets[static_cast<size_t>(n_experts)];
  AM_CHECK(A <= assign_slot.numel(), "{} assignments do not fit assign_slot of {} entries", A, assign_slot.numel());

  fill_bytes(slot_assign.data, 0xff, slot_assign.nbytes());  // -1: empty
  if (A == 0) return 0;
  copy_on_device(assign_slot.data, sorted_vals.ptr, sizeof(int32_t) * A);
  launch<route_invert_kernel>(blocks_for(A), moe::kThreads, 0, compute_stream(), slot_assign.as<int32_t>(),
                              sorted_vals.ptr, A);
  return A;
}

// bf16 storage: out and x natively in every dtype combination.
void gather_rows(Backend& be, Tensor out, Tensor x, Tensor assign_slot, int kmax) {
  const int64_t A = row_count(out), d = last_dim(out), N = row_count(x);
  if (A * d == 0) return;
  by_storage(out, x, [&](auto so, auto sx) {
    using TO = typename decltype(so)::type;
    using TX = typename decltype(sx)::type;
    launch<gather_rows_kernel<TO, TX>>(blocks_for(A * d), moe::kThreads, 0, compute_stream(), data_as<TO>(out),
                                       data_as<const TX>(x), assign_slot.as<int32_t>(), A, d, kmax, N * kmax);
  });
}

// bf16 storage: y and expert_out natively; a BF16 slot_gate through an fp32 copy.
void combine(Backend& be, Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) {
  const int64_t N = row_count(y), d = last_dim(y), A = row_count(expert_out), kmax = last_dim(slot_assign);
  if (N * d == 0) return;
  F32Copies f32(be, {&slot_gate});
  by_storage(y, expert_out, [&](auto sy, auto se) {
    using TY = typename decltype(sy)::type;
    using TE = typename decltype(se)::type;
    launch<combine_kernel<TY, TE>>(blocks_for(N * d), moe::kThreads, 0, compute_stream(), data_as<TY>(y),
                                   data_as<const TE>(expert_out), slot_gate.as<float>(), slot_assign.as<int32_t>(), N,
                                   d, static_cast<int>(kmax), A);
  });
}

// bf16 storage: expert_out natively; BF16 dexpert_out, dslot_gate, dy or slot_gate through fp32
// copies.
void combine_backward(Backend& be, Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out,
                      Tensor slot_gate, Tensor slot_assign) {
  const int64_t N = row_count(dy), d = last_dim(dy), A = row_count(expert_out), kmax = last_dim(slot_assign);
  const int64_t slots = N * kmax;
  if (slots == 0) return;
  F32Copies f32(be, {Backend::rw(&dexpert_out), Backend::rw(&dslot_gate), &dy, &slot_gate});
  by_storage(expert_out, [&](auto se) {
    using TE = typename decltype(se)::type;
    launch<combine_backward_kernel<TE>>(blocks_for_warps(slots), moe::kThreads, 0, compute_stream(),
                                        dexpert_out.as<float>(), dslot_gate.as<float>(), dy.as<float>(),
                                        data_as<const TE>(expert_out), slot_gate.as<float>(), slot_assign.as<int32_t>(),
                                        slots, static_cast<int>(kmax), A, d);
  });
  f32.narrow();
}

void scatter_rows_add(Backend& be, Tensor dx, Tensor src, Tensor slot_assign) {
  const int64_t N = row_count(dx), d = last_dim(dx), A = row_count(src), kmax = last_dim(slot_assign);
  if (N * d == 0) return;
  launch<scatter_rows_kernel>(blocks_for(N * d), moe::kThreads, 0, compute_stream(), dx.as<float>(), src.as<float>(),
                              slot_assign.as<int32_t>(), N, d, static_cast<int>(kmax), A);
}

// ---- activation norms ----

// bf16 storage: c natively; a BF16 s through an fp32 copy.
void block_norms(Backend& be, Tensor s, Tensor c, int n_blocks, NormKind kind) {
  const int64_t N = row_count(c), dl = last_dim(c) / n_blocks, S = last_dim(s);
  if (N == 0) return;
  F32Copies f32(be, {Backend::rw(&s)});
  by_storage(c, [&](auto sc) {
    using TC = typename decltype(sc)::type;
    launch<block_norms_kernel<TC>>(blocks_for_warps(N * n_blocks), moe::kThreads, 0, compute_stream(), s.as<float>(), S,
                                   data_as<const TC>(c), N, n_blocks, dl, kind);
  });
  f32.narrow();
}

// bf16 storage: c natively; BF16 dc, ds or s through fp32 copies.
void block_norms_backward(Backend& be, Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, NormKind kind) {
  const int64_t N = row_count(c), dl = last_dim(c) / n_blocks, S = last_dim(s);
  if (N == 0 || dl == 0) return;
  F32Copies f32(be, {Backend::rw(&dc), &ds, &s});
  by_storage(c, [&](auto sc) {
    using TC = typename decltype(sc)::type;
    launch<block_norms_backward_kernel<TC>>(blocks_for_warps(N * n_blocks), moe::kThreads, 0, compute_stream(),
                                            dc.as<float>(), ds.as<float>(), data_as<const TC>(c), s.as<float>(), S, N,
                                            n_blocks, dl, kind);
  });
  f32.narrow();
}

// bf16 storage: out and c natively in every dtype combination.
void gather_blocks(Backend& be, Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) {
  const BlockGeometry g = block_geometry(out, c, slot_expert);
  if (g.A == 0) return;
  by_storage(out, c, [&](auto so, auto sc) {
    using TO = typename decltype(so)::type;
    using TC = typename decltype(sc)::type;
    launch<gather_blocks_kernel<TO, TC>>(blocks_for(g.A * g.dl), moe::kThreads, 0, compute_stream(), data_as<TO>(out),
                                         data_as<const TC>(c), assign_slot.as<int32_t>(), slot_expert.as<int32_t>(),
                                         g.A, g.N * g.kmax, static_cast<int>(g.kmax), static_cast<int>(g.n), g.dl);
  });
}

void scatter_blocks_add(Backend& be, Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) {
  const BlockGeometry g = block_geometry(src, dc, slot_expert);
  if (g.A == 0) return;
  AM_CHECK(g.A <= INT32_MAX && g.N * g.n < int64_t(UINT32_MAX),
           "scatter_blocks_add: {} assignments into {} blocks: more than 32-bit indices hold", g.A, g.N * g.n);
  const uint32_t n_blocks = static_cast<uint32_t>(g.N * g.n);
  Scratch<uint32_t> keys(be, g.A), sorted_keys(be, g.A);
  Scratch<int32_t> vals(be, g.A), sorted_vals(be, g.A);
  launch<block_keys_kernel>(blocks_for(g.A), moe::kThreads, 0, compute_stream(), keys.ptr, vals.ptr,
                            assign_slot.as<int32_t>(), slot_expert.as<int32_t>(), g.A, g.N * g.kmax,
                            static_cast<int>(g.kmax), static_cast<int>(g.n), n_blocks);
  sort_pairs(be, keys.ptr, sorted_keys.ptr, vals.ptr, sorted_vals.ptr, g.A, bits_for(n_blocks));
  launch<scatter_blocks_kernel>(blocks_for_warps(g.A), moe::kThreads, 0, compute_stream(), dc.as<float>(),
                                src.as<float>(), sorted_keys.ptr, sorted_vals.ptr, g.A, g.dl, n_blocks);
}

}  // namespace am::cuda

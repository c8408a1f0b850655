// select.cu: expert selection on the device -- top-k with null experts and softmax gates, top-p,
// expert choice, the capacity drop and slot counts. The executable spec is src/cpu/ops_topk.cpp,
// ops_select.cpp and ops_capacity.cpp: the same slots bit for bit (the one order of
// cpu/select_order.h), gates to fp32 rounding (the same double arithmetic in the same order).
//
// Kernel design:
//  - top-k / top-p: one warp per token row. Pass j picks the preferred (value, id) strictly after
//    the pick of pass j-1 in the strict total order, so no "taken" state is needed; each lane
//    scans ids lane, lane+32, ... and a butterfly reduction with the same total order leaves the
//    unique winner in every lane (independent of the reduction shape).
//  - expert choice and capacity: a stable CUB radix sort of (segment << 32 | desc_key(value),
//    index) pairs, listed in increasing index order, gives every segment (a (group, expert) pair,
//    or an expert) in preference order; an item is kept when fewer than `capacity` items of its
//    segment precede it.
//  - backward ops: one thread per row (a few slots), doubles in slot order like the CPU.
//  - slot_stats: integer atomics on per-block shared histograms (order-independent results).
// Value checks that the CPU does with AM_CHECK (ids in range) cost a device round trip here; the
// kernels instead never read or write out of bounds (slot_stats does check, as it returns to the
// host anyway; capacity_route passes ids < -1 through, for route_build's check to catch).
#include "check.cuh"
#include "core/op_checks.h"
#include "launch.cuh"
#include "moe_common.cuh"
#include "ops.cuh"

#include <cmath>

namespace am::cuda {

using namespace moe;

namespace {

// The warp's next pick from row r (n entries): the preferred (value, id) strictly after the
// previous pick (pv, pi), or over the whole row when pi < 0. Every lane returns the same id (-1
// when nothing is left) and its value in *v.
__device__ int warp_next(const float* r, int n, float pv, int pi, float* v) {
  int best = -1;
  float bv = 0.f;
  for (int e = lane_id(); e < n; e += 32) {
    const float x = r[e];
    if (pi >= 0 && !preferred(pv, pi, x, e)) continue;  // taken by an earlier pass
    if (best < 0 || preferred(x, e, bv, best)) {
      best = e;
      bv = x;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    const int ob = __shfl_xor_sync(kFullMask, best, off);
    const float ov = __shfl_xor_sync(kFullMask, bv, off);
    if (ob >= 0 && (best < 0 || preferred(ov, ob, bv, best))) {
      best = ob;
      bv = ov;
    }
  }
  *v = bv;
  return best;
}

// rank, gate_scores (N, n_total) -> slot_expert, slot_gate (N, k). One warp per row.
__global__ void topk_kernel(int32_t* slot_expert, float* slot_gate, const float* rank, const float* gate_scores,
                            int64_t N, int n_total, int k, int n_true) {
  for (int64_t t = warp_id(); t < N; t += warp_stride()) {
    const float* r = rank + t * n_total;
    const float* s = gate_scores + t * n_total;
    int32_t* ex = slot_expert + t * k;
    float* gate = slot_gate + t * k;
    int prev = -1;
    float pv = 0.f;
    for (int j = 0; j < k; ++j) {  // k <= n_total: a pick always exists
      float v;
      const int best = warp_next(r, n_total, pv, prev, &v);
      if (lane_id() == 0) ex[j] = best;
      prev = best;
      pv = v;
    }
    if (lane_id() == 0) {
      // Softmax of the gate scores over the selected true experts (double, max subtracted); lane
      // 0 reads back its own writes of ex.
      double mx = -INFINITY;
      for (int j = 0; j < k; ++j) {
        const double x = s[ex[j]];
        if (ex[j] < n_true) mx = (mx < x) ? x : mx;  // std::max(mx, x)
      }
      double sum = 0;
      for (int j = 0; j < k; ++j) {
        if (ex[j] < n_true) sum += exp(double(s[ex[j]]) - mx);
      }
      for (int j = 0; j < k; ++j) {
        gate[j] = ex[j] < n_true ? static_cast<float>(exp(double(s[ex[j]]) - mx) / sum) : 0.f;
      }
    }
    __syncwarp();
  }
}

// dgate_scores (N, n_total) acc. One thread per row.
__global__ void topk_backward_kernel(float* dgate_scores, const float* dslot_gate, const int32_t* slot_expert,
                                     const float* slot_gate, int64_t N, int n_total, int k, int n_true) {
  for (int64_t t = thread_id(); t < N; t += thread_stride()) {
    const int32_t* ex = slot_expert + t * k;
    const float* g = slot_gate + t * k;
    const float* dg = dslot_gate + t * k;
    double c = 0;  // sum_l g_l dg_l over the true slots
    for (int j = 0; j < k; ++j) {
      if (ex[j] >= 0 && ex[j] < n_true) c += double(g[j]) * dg[j];
    }
    float* ds = dgate_scores + t * n_total;
    for (int j = 0; j < k; ++j) {
      if (ex[j] >= 0 && ex[j] < n_true) ds[ex[j]] += static_cast<float>(double(g[j]) * (double(dg[j]) - c));
    }
  }
}

// probs (N, n) -> slot_expert, slot_gate (N, kmax). One warp per row.
__global__ void topp_kernel(int32_t* slot_expert, float* slot_gate, const float* probs, int64_t N, int n, int kmax,
                            double p, bool renormalize) {
  const int limit = min(n, kmax);
  for (int64_t t = warp_id(); t < N; t += warp_stride()) {
    const float* pr = probs + t * n;
    int32_t* ex = slot_expert + t * kmax;
    float* gate = slot_gate + t * kmax;
    double cum = 0;  // the same double sum, in the same order, in every lane
    int m = 0, prev = -1;
    float pv = 0.f;
    while (m < limit && !(cum >= p)) {
      float v;
      const int best = warp_next(pr, n, pv, prev, &v);
      if (lane_id() == 0) ex[m] = best;
      ++m;
      cum += v;
      prev = best;
      pv = v;
    }
    __syncwarp();  // lane 0's writes of ex[0, m) are visible to the warp
    const double inv = renormalize ? (cum > 0 ? 1.0 / cum : 0.0) : 1.0;
    for (int j = lane_id(); j < m; j += 32) gate[j] = static_cast<float>(double(pr[ex[j]]) * inv);
    for (int j = m + lane_id(); j < kmax; j += 32) {
      ex[j] = -1;
      gate[j] = 0.f;
    }
    __syncwarp();
  }
}

// dprobs (N, n) acc. One thread per row.
__global__ void topp_backward_kernel(float* dprobs, const float* dslot_gate, const int32_t* slot_expert,
                                     const float* slot_gate, const float* probs, int64_t N, int n, int kmax,
                                     bool renormalize) {
  for (int64_t t = thread_id(); t < N; t += thread_stride()) {
    const int32_t* ex = slot_expert + t * kmax;
    const float* g = slot_gate + t * kmax;
    const float* dg = dslot_gate + t * kmax;
    const float* pr = probs + t * n;
    float* dp = dprobs + t * n;
    auto filled = [&](int j) { return ex[j] >= 0 && ex[j] < n; };
    if (!renormalize) {
      for (int j = 0; j < kmax; ++j) {
        if (filled(j)) dp[ex[j]] += dg[j];
      }
      continue;
    }
    double S = 0, c = 0;  // the kept mass and sum_l g_l dg_l
    for (int j = 0; j < kmax; ++j) {
      if (!filled(j)) continue;
      S += pr[ex[j]];
      c += double(g[j]) * dg[j];
    }
    if (!(S > 0)) continue;  // nothing kept (or a zero row): the gates were 0, constant
    for (int j = 0; j < kmax; ++j) {
      if (filled(j)) dp[ex[j]] += static_cast<float>((double(dg[j]) - c) / S);
    }
  }
}

// Expert choice: item i = t*n + e of probs (N, n) belongs to segment (t / group) * n + e.
__global__ void expert_choice_keys_kernel(uint64_t* keys, int32_t* vals, const float* probs, int64_t total, int n,
                                          int64_t group) {
  for (int64_t i = thread_id(); i < total; i += thread_stride()) {
    const int64_t t = i / n, e = i % n;
    const uint64_t seg = static_cast<uint64_t>((t / group) * n + e);
    keys[i] = (seg << 32) | desc_key(probs[i]);
    vals[i] = static_cast<int32_t>(i);
  }
}

// After the sort, segment s holds sorted positions [s*group, (s+1)*group) (every segment has
// exactly `group` items): its first `capacity` are chosen.
__global__ void expert_choice_pick_kernel(int32_t* slot_expert, float* slot_gate, const int32_t* sorted_vals,
                                          const float* probs, int64_t total, int n, int64_t group, int64_t capacity) {
  for (int64_t q = thread_id(); q < total; q += thread_stride()) {
    if (q % group >= capacity) continue;
    const int64_t i = sorted_vals[q];
    slot_expert[i] = static_cast<int32_t>(i % n);
    slot_gate[i] = probs[i];
  }
}

__global__ void expert_choice_backward_kernel(float* dprobs, const float* dslot_gate, const int32_t* slot_expert,
                                              int64_t total) {
  for (int64_t i = thread_id(); i < total; i += thread_stride()) {
    if (slot_expert[i] >= 0) dprobs[i] += dslot_gate[i];
  }
}

// routed = slot_expert with null ids (>= n_true) -> -1. Ids < -1 pass through unchanged (the CPU
// fails on them; route_build, which consumes routed, reports them).
__global__ void capacity_map_kernel(int32_t* routed, const int32_t* slot_expert, int64_t slots, int n_true) {
  for (int64_t i = thread_id(); i < slots; i += thread_stride()) {
    const int32_t e = slot_expert[i];
    routed[i] = e >= n_true ? -1 : e;
  }
}

// Key of slot i: (e << 32 | desc_key(scores[t][e])) for a true id e, else (n_true << 32) (after
// every expert's segment).
__global__ void capacity_keys_kernel(uint64_t* keys, int32_t* vals, const int32_t* routed, const float* scores,
                                     int64_t slots, int kmax, int n_scores, int n_true) {
  for (int64_t i = thread_id(); i < slots; i += thread_stride()) {
    const int32_t e = routed[i];
    keys[i] = (e >= 0 && e < n_true) ? (uint64_t(e) << 32) | desc_key(scores[(i / kmax) * n_scores + e])
                                     : uint64_t(n_true) << 32;
    vals[i] = static_cast<int32_t>(i);
  }
}

// Sorted position q is beyond its expert's capacity when the item `capacity` positions earlier
// belongs to the same expert (segments are contiguous): drop it.
__global__ void capacity_drop_kernel(int32_t* routed, const uint64_t* sorted_keys, const int32_t* sorted_vals,
                                     int64_t slots, int n_true, int64_t capacity) {
  for (int64_t q = thread_id(); q < slots; q += thread_stride()) {
    const uint64_t e = sorted_keys[q] >> 32;
    if (e < uint64_t(n_true) && q >= capacity && (sorted_keys[q - capacity] >> 32) == e) {
      routed[sorted_vals[q]] = -1;
    }
  }
}

// counts: [0, n_total) per id, [n_total] rows without a true id, [n_total + 1] the first slot
// with an id outside [-1, n_total) (initialised to ~0). One thread per row; per-block shared
// histograms when `shared` (n_total small enough), else global atomics.
__global__ void slot_stats_kernel(unsigned long long* counts, const int32_t* slot_expert, int64_t N, int kmax,
                                  int n_total, int n_true, bool shared) {
  AM_DYNAMIC_SHARED(unsigned int, hist);
  if (shared) {
    for (int i = threadIdx.x; i < n_total; i += blockDim.x) hist[i] = 0;
    __syncthreads();
  }
  const int64_t rows_per_grid = thread_stride();
  // Every thread of the block runs the same number of iterations (for the barriers below).
  for (int64_t base = int64_t(blockIdx.x) * blockDim.x; base < N; base += rows_per_grid) {
    const int64_t t = base + threadIdx.x;
    if (t < N) {
      bool any_true = false;
      for (int j = 0; j < kmax; ++j) {
        const int64_t i = t * kmax + j;
        const int32_t e = slot_expert[i];
        if (e < -1 || e >= n_total) {
          atomicMin(&counts[n_total + 1], static_cast<unsigned long long>(i));
          continue;
        }
        if (e < 0) continue;
        if (shared) {
          atomicAdd(&hist[e], 1u);
        } else {
          atomicAdd(&counts[e], 1ull);
        }
        any_true = any_true || e < n_true;
      }
      if (!any_true) atomicAdd(&counts[n_total], 1ull);
    }
  }
  if (shared) {
    __syncthreads();
    for (int i = threadIdx.x; i < n_total; i += blockDim.x) {
      if (hist[i] != 0) atomicAdd(&counts[i], static_cast<unsigned long long>(hist[i]));
    }
  }
}

}  // namespace

// ---- top-k ----

void topk_select(Backend& be, Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k,
                 int n_true) {
  const int64_t N = row_count(rank_scores), n_total = last_dim(rank_scores);
  if (N == 0) return;
  launch<topk_kernel>(blocks_for_warps(N), moe::kThreads, 0, compute_stream(), slot_expert.as<int32_t>(),
                      slot_gate.as<float>(), rank_scores.as<float>(), gate_scores.as<float>(), N,
                      static_cast<int>(n_total), k, n_true);
}

void topk_select_backward(Backend& be, Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                          int n_true) {
  const int64_t N = row_count(dgate_scores), n_total = last_dim(dgate_scores), k = last_dim(slot_gate);
  if (N == 0 || k == 0) return;
  launch<topk_backward_kernel>(blocks_for(N), moe::kThreads, 0, compute_stream(), dgate_scores.as<float>(),
                               dslot_gate.as<float>(), slot_expert.as<int32_t>(), slot_gate.as<float>(), N,
                               static_cast<int>(n_total), static_cast<int>(k), n_true);
}

// ---- top-p and expert choice ----

void topp_select(Backend& be, Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize) {
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  if (N == 0) return;
  launch<topp_kernel>(blocks_for_warps(N), moe::kThreads, 0, compute_stream(), slot_expert.as<int32_t>(),
                      slot_gate.as<float>(), probs.as<float>(), N, static_cast<int>(n), static_cast<int>(kmax), p,
                      renormalize);
}

void topp_select_backward(Backend& be, Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                          Tensor probs, bool renormalize) {
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  if (N == 0 || kmax == 0) return;
  launch<topp_backward_kernel>(blocks_for(N), moe::kThreads, 0, compute_stream(), dprobs.as<float>(),
                               dslot_gate.as<float>(), slot_expert.as<int32_t>(), slot_gate.as<float>(),
                               probs.as<float>(), N, static_cast<int>(n), static_cast<int>(kmax), renormalize);
}

void expert_choice_select(Backend& be, Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group,
                          int64_t capacity) {
  const int64_t N = row_count(probs), n = last_dim(probs);
  const int64_t total = N * n;
  if (total == 0) return;
  AM_CHECK(total <= INT32_MAX, "expert choice over {} entries: more than int32 indices hold", total);
  fill_bytes(slot_expert.data, 0xff, slot_expert.nbytes());  // -1
  fill_bytes(slot_gate.data, 0, slot_gate.nbytes());
  if (capacity == 0) return;
  Scratch<uint64_t> keys(be, total), sorted_keys(be, total);
  Scratch<int32_t> vals(be, total), sorted_vals(be, total);
  launch<expert_choice_keys_kernel>(blocks_for(total), moe::kThreads, 0, compute_stream(), keys.ptr, vals.ptr,
                                    probs.as<float>(), total, static_cast<int>(n), group);
  const uint64_t segments = static_cast<uint64_t>((N / group) * n);
  sort_pairs(be, keys.ptr, sorted_keys.ptr, vals.ptr, sorted_vals.ptr, total, 32 + bits_for(segments - 1));
  launch<expert_choice_pick_kernel>(blocks_for(total), moe::kThreads, 0, compute_stream(), slot_expert.as<int32_t>(),
                                    slot_gate.as<float>(), sorted_vals.ptr, probs.as<float>(), total,
                                    static_cast<int>(n), group, capacity);
}

void expert_choice_select_backward(Backend& be, Tensor dprobs, Tensor dslot_gate, Tensor slot_expert) {
  const int64_t N = row_count(slot_expert), n = last_dim(slot_expert);
  const int64_t total = N * n;
  if (total == 0) return;
  launch<expert_choice_backward_kernel>(blocks_for(total), moe::kThreads, 0, compute_stream(), dprobs.as<float>(),
                                        dslot_gate.as<float>(), slot_expert.as<int32_t>(), total);
}

// ---- capacity and counts ----

void capacity_route(Backend& be, Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert), n_scores = last_dim(scores);
  const int64_t slots = N * kmax;
  if (slots == 0) return;
  AM_CHECK(slots <= INT32_MAX, "capacity_route over {} slots: more than int32 indices hold", slots);
  int32_t* out = routed.as<int32_t>();
  launch<capacity_map_kernel>(blocks_for(slots), moe::kThreads, 0, compute_stream(), out, slot_expert.as<int32_t>(),
                              slots, n_true);
  if (capacity == 0) return;  // no cap
  Scratch<uint64_t> keys(be, slots), sorted_keys(be, slots);
  Scratch<int32_t> vals(be, slots), sorted_vals(be, slots);
  launch<capacity_keys_kernel>(blocks_for(slots), moe::kThreads, 0, compute_stream(), keys.ptr, vals.ptr, out,
                               scores.as<float>(), slots, static_cast<int>(kmax), static_cast<int>(n_scores), n_true);
  sort_pairs(be, keys.ptr, sorted_keys.ptr, vals.ptr, sorted_vals.ptr, slots, 32 + bits_for(uint64_t(n_true)));
  launch<capacity_drop_kernel>(blocks_for(slots), moe::kThreads, 0, compute_stream(), out, sorted_keys.ptr,
                               sorted_vals.ptr, slots, n_true, capacity);
}

Backend::SlotStats slot_stats(Backend& be, Tensor slot_expert, int n_total, int n_true) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  Backend::SlotStats st;
  st.per_id.assign(static_cast<size_t>(n_total), 0);
  if (N == 0) return st;
  Scratch<unsigned long long> counts(be, n_total + 2);
  fill_bytes(counts.ptr, 0, sizeof(unsigned long long) * (n_total + 1));
  fill_bytes(counts.ptr + n_total + 1, 0xff, sizeof(unsigned long long));
  const bool shared = n_total <= 8192;  // 32 KiB of shared memory at most
  const size_t shmem = shared ? sizeof(unsigned int) * static_cast<size_t>(n_total) : 0;
  launch<slot_stats_kernel>(blocks_for(N), moe::kThreads, shmem, compute_stream(), counts.ptr,
                            slot_expert.as<int32_t>(), N, static_cast<int>(kmax), n_total, n_true, shared);
  std::vector<unsigned long long> host(static_cast<size_t>(n_total) + 2);
  copy_to_host(host.data(), counts.ptr, sizeof(unsigned long long) * host.size());
  const unsigned long long bad = host[static_cast<size_t>(n_total) + 1];
  if (bad != ~0ull) {
    int32_t id = 0;
    copy_to_host(&id, slot_expert.as<int32_t>() + bad, sizeof(id));
    AM_CHECK(false, "slot {} holds id {}, outside [-1, {})", bad, id, n_total);
  }
  for (int e = 0; e < n_total; ++e) st.per_id[static_cast<size_t>(e)] = static_cast<int64_t>(host[e]);
  st.rows_without_true = static_cast<int64_t>(host[static_cast<size_t>(n_total)]);
  return st;
}

}  // namespace am::cuda

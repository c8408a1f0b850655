// CpuBackend: expert selection (top-k with null experts, top-p, expert choice, capacity), slot
// counts, AoE activation norms with their block gather / scatter, column writers and entropy.
#include "cpu/cpu_backend.h"
#include "cpu/cpu_checks.h"
#include "cpu/ops_capacity.h"
#include "cpu/ops_entropy.h"
#include "cpu/ops_norms.h"
#include "cpu/ops_select.h"
#include "cpu/ops_topk.h"

namespace am {

using namespace am::cpu;

// ---- top-k ----

void CpuBackend::topk_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k,
                                  int n_true) {
  const int64_t N = row_count(rank_scores), n_total = last_dim(rank_scores);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topk_select<T>(slot_expert.as<int32_t>(), slot_gate.as<T>(), rank_scores.as<T>(), gate_scores.as<T>(), N,
                        n_total, k, n_true);
  });
}

void CpuBackend::topk_select_backward_impl(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                                           int n_true) {
  const int64_t N = row_count(dgate_scores), n_total = last_dim(dgate_scores), k = last_dim(slot_gate);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topk_select_backward<T>(dgate_scores.as<T>(), dslot_gate.as<T>(), slot_expert.as<int32_t>(), slot_gate.as<T>(),
                                 N, n_total, k, n_true);
  });
}

// ---- top-p and expert choice ----

void CpuBackend::topp_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize) {
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topp_select<T>(slot_expert.as<int32_t>(), slot_gate.as<T>(), probs.as<T>(), N, n, kmax, p, renormalize);
  });
}

void CpuBackend::topp_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                                           Tensor probs, bool renormalize) {
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topp_select_backward<T>(dprobs.as<T>(), dslot_gate.as<T>(), slot_expert.as<int32_t>(), slot_gate.as<T>(),
                                 probs.as<T>(), N, n, kmax, renormalize);
  });
}

void CpuBackend::expert_choice_select_impl(Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group,
                                           int64_t capacity) {
  const int64_t N = row_count(probs), n = last_dim(probs);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::expert_choice_select<T>(slot_expert.as<int32_t>(), slot_gate.as<T>(), probs.as<T>(), N, n, group, capacity);
  });
}

void CpuBackend::expert_choice_select_backward_impl(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert) {
  const int64_t N = row_count(slot_expert), n = last_dim(slot_expert);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::expert_choice_select_backward<T>(dprobs.as<T>(), dslot_gate.as<T>(), slot_expert.as<int32_t>(), N, n);
  });
}

// ---- capacity and counts ----

void CpuBackend::capacity_route_impl(Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert), n_scores = last_dim(scores);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::capacity_route<T>(routed.as<int32_t>(), slot_expert.as<int32_t>(), scores.as<T>(), N, kmax, n_scores, n_true,
                           capacity);
  });
}

Backend::SlotStats CpuBackend::slot_stats_impl(Tensor slot_expert, int n_total, int n_true) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  SlotStats st;
  st.rows_without_true = cpu::slot_stats(st.per_id, slot_expert.as<int32_t>(), N, kmax, n_total, n_true);
  return st;
}

// ---- activation norms ----

void CpuBackend::block_norms_impl(Tensor s, Tensor c, int n_blocks, NormKind kind) {
  const int64_t N = row_count(c), dl = last_dim(c) / n_blocks, S = last_dim(s);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::block_norms<T>(s.as<T>(), S, c.as<T>(), N, n_blocks, dl, kind);
  });
}

void CpuBackend::block_norms_backward_impl(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, NormKind kind) {
  const int64_t N = row_count(c), dl = last_dim(c) / n_blocks, S = last_dim(s);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::block_norms_backward<T>(dc.as<T>(), ds.as<T>(), c.as<T>(), s.as<T>(), S, N, n_blocks, dl, kind);
  });
}

namespace {

// The geometry shared by gather_blocks and scatter_blocks_add: blocks (A,dl), c (N, n*dl).
struct BlockGeometry {
  int64_t A, dl, N, kmax, n;
};

BlockGeometry block_geometry(const Tensor& blocks, const Tensor& c, const Tensor& slot_expert) {
  const int64_t dl = last_dim(blocks);
  return {row_count(blocks), dl, row_count(slot_expert), last_dim(slot_expert), last_dim(c) / dl};
}

}  // namespace

void CpuBackend::gather_blocks_impl(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) {
  const BlockGeometry g = block_geometry(out, c, slot_expert);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::gather_blocks<T>(out.as<T>(), c.as<T>(), assign_slot.as<int32_t>(), slot_expert.as<int32_t>(), g.A, g.N,
                          g.kmax, g.n, g.dl);
  });
}

void CpuBackend::scatter_blocks_add_impl(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) {
  const BlockGeometry g = block_geometry(src, dc, slot_expert);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::scatter_blocks_add<T>(dc.as<T>(), src.as<T>(), assign_slot.as<int32_t>(), slot_expert.as<int32_t>(), g.A, g.N,
                               g.kmax, g.n, g.dl);
  });
}

// ---- column writers ----

void CpuBackend::broadcast_columns_impl(Tensor x, Tensor v, int64_t col) {
  const int64_t N = row_count(x), C = last_dim(x), m = v.numel();
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::broadcast_columns<T>(x.as<T>(), v.as<T>(), N, C, m, col);
  });
}

void CpuBackend::copy_columns_impl(Tensor dst, Tensor src, int64_t col) {
  const int64_t N = row_count(dst), C = last_dim(dst), w = last_dim(src);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::copy_columns<T>(dst.as<T>(), src.as<T>(), N, C, w, col);
  });
}

// ---- entropy ----

double CpuBackend::entropy_sum_impl(Tensor p) {
  enter();
  double r = 0;
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    r = cpu::entropy_sum<T>(p.as<T>(), p.numel());
  });
  return r;
}

void CpuBackend::entropy_backward_impl(Tensor dp, Tensor p, double scale) {
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::entropy_backward<T>(dp.as<T>(), p.as<T>(), p.numel(), scale);
  });
}

}  // namespace am

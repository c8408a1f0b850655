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

void CpuBackend::topk_select(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores,
                             Tensor gate_scores, int k, int n_true) {
  const int64_t N = row_count(rank_scores), n_total = last_dim(rank_scores);
  check_matrix("topk_select", "rank_scores", rank_scores, dtype_, N, n_total);
  check_matrix("topk_select", "gate_scores", gate_scores, dtype_, N, n_total);
  check_matrix("topk_select", "slot_expert", slot_expert, DType::I32, N, k);
  check_matrix("topk_select", "slot_gate", slot_gate, dtype_, N, k);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topk_select<T>(slot_expert.as<int32_t>(), slot_gate.as<T>(), rank_scores.as<T>(),
                        gate_scores.as<T>(), N, n_total, k, n_true);
  });
}

void CpuBackend::topk_select_backward(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert,
                                      Tensor slot_gate, int n_true) {
  const int64_t N = row_count(dgate_scores), n_total = last_dim(dgate_scores),
                k = last_dim(slot_gate);
  check_matrix("topk_select_backward", "dgate_scores", dgate_scores, dtype_, N, n_total);
  check_matrix("topk_select_backward", "slot_gate", slot_gate, dtype_, N, k);
  check_matrix("topk_select_backward", "dslot_gate", dslot_gate, dtype_, N, k);
  check_matrix("topk_select_backward", "slot_expert", slot_expert, DType::I32, N, k);
  AM_CHECK(n_true >= 1 && n_true <= n_total, "topk_select_backward: {} true experts of {}", n_true,
           n_total);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topk_select_backward<T>(dgate_scores.as<T>(), dslot_gate.as<T>(),
                                 slot_expert.as<int32_t>(), slot_gate.as<T>(), N, n_total, k,
                                 n_true);
  });
}

// ---- top-p and expert choice ----

void CpuBackend::topp_select(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p,
                             bool renormalize) {
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  check_matrix("topp_select", "probs", probs, dtype_, N, n);
  check_matrix("topp_select", "slot_expert", slot_expert, DType::I32, N, kmax);
  check_matrix("topp_select", "slot_gate", slot_gate, dtype_, N, kmax);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topp_select<T>(slot_expert.as<int32_t>(), slot_gate.as<T>(), probs.as<T>(), N, n, kmax, p,
                        renormalize);
  });
}

void CpuBackend::topp_select_backward(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert,
                                      Tensor slot_gate, Tensor probs, bool renormalize) {
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  check_matrix("topp_select_backward", "probs", probs, dtype_, N, n);
  check_matrix("topp_select_backward", "dprobs", dprobs, dtype_, N, n);
  check_matrix("topp_select_backward", "slot_expert", slot_expert, DType::I32, N, kmax);
  check_matrix("topp_select_backward", "slot_gate", slot_gate, dtype_, N, kmax);
  check_matrix("topp_select_backward", "dslot_gate", dslot_gate, dtype_, N, kmax);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::topp_select_backward<T>(dprobs.as<T>(), dslot_gate.as<T>(), slot_expert.as<int32_t>(),
                                 slot_gate.as<T>(), probs.as<T>(), N, n, kmax, renormalize);
  });
}

void CpuBackend::expert_choice_select(Tensor slot_expert, Tensor slot_gate, Tensor probs,
                                      int64_t group, int64_t capacity) {
  const int64_t N = row_count(probs), n = last_dim(probs);
  check_matrix("expert_choice_select", "probs", probs, dtype_, N, n);
  check_matrix("expert_choice_select", "slot_expert", slot_expert, DType::I32, N, n);
  check_matrix("expert_choice_select", "slot_gate", slot_gate, dtype_, N, n);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::expert_choice_select<T>(slot_expert.as<int32_t>(), slot_gate.as<T>(), probs.as<T>(), N, n,
                                 group, capacity);
  });
}

void CpuBackend::expert_choice_select_backward(Tensor dprobs, Tensor dslot_gate,
                                               Tensor slot_expert) {
  const int64_t N = row_count(slot_expert), n = last_dim(slot_expert);
  check_matrix("expert_choice_select_backward", "slot_expert", slot_expert, DType::I32, N, n);
  check_matrix("expert_choice_select_backward", "dslot_gate", dslot_gate, dtype_, N, n);
  check_matrix("expert_choice_select_backward", "dprobs", dprobs, dtype_, N, n);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::expert_choice_select_backward<T>(dprobs.as<T>(), dslot_gate.as<T>(),
                                          slot_expert.as<int32_t>(), N, n);
  });
}

// ---- capacity and counts ----

void CpuBackend::capacity_route(Tensor routed, Tensor slot_expert, Tensor scores, int n_true,
                                int64_t capacity) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert),
                n_scores = last_dim(scores);
  check_matrix("capacity_route", "slot_expert", slot_expert, DType::I32, N, kmax);
  check_matrix("capacity_route", "routed", routed, DType::I32, N, kmax);
  check_matrix("capacity_route", "scores", scores, dtype_, N, n_scores);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::capacity_route<T>(routed.as<int32_t>(), slot_expert.as<int32_t>(), scores.as<T>(), N,
                           kmax, n_scores, n_true, capacity);
  });
}

Backend::SlotStats CpuBackend::slot_stats(Tensor slot_expert, int n_total, int n_true) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  check_matrix("slot_stats", "slot_expert", slot_expert, DType::I32, N, kmax);
  SlotStats st;
  st.rows_without_true =
      cpu::slot_stats(st.per_id, slot_expert.as<int32_t>(), N, kmax, n_total, n_true);
  return st;
}

// ---- activation norms ----

namespace {

// c (N, n_blocks*dl): returns dl.
int64_t block_width(const char* op, const Tensor& c, int n_blocks) {
  AM_CHECK(n_blocks >= 1 && last_dim(c) % n_blocks == 0,
           "{}: c {} does not split into {} blocks", op, c.shape_str(), n_blocks);
  return last_dim(c) / n_blocks;
}

}  // namespace

void CpuBackend::block_norms(Tensor s, Tensor c, int n_blocks, NormKind kind) {
  const int64_t N = row_count(c), dl = block_width("block_norms", c, n_blocks), S = last_dim(s);
  check_matrix("block_norms", "c", c, dtype_, N, n_blocks * dl);
  check_matrix("block_norms", "s", s, dtype_, N, S);
  AM_CHECK(S >= n_blocks, "block_norms: s {} has fewer than {} columns", s.shape_str(), n_blocks);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::block_norms<T>(s.as<T>(), S, c.as<T>(), N, n_blocks, dl, kind);
  });
}

void CpuBackend::block_norms_backward(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks,
                                      NormKind kind) {
  const int64_t N = row_count(c), dl = block_width("block_norms_backward", c, n_blocks),
                S = last_dim(s);
  check_matrix("block_norms_backward", "c", c, dtype_, N, n_blocks * dl);
  check_matrix("block_norms_backward", "dc", dc, dtype_, N, n_blocks * dl);
  check_matrix("block_norms_backward", "s", s, dtype_, N, S);
  check_matrix("block_norms_backward", "ds", ds, dtype_, N, S);
  AM_CHECK(S >= n_blocks, "block_norms_backward: s {} has fewer than {} columns", s.shape_str(),
           n_blocks);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::block_norms_backward<T>(dc.as<T>(), ds.as<T>(), c.as<T>(), s.as<T>(), S, N, n_blocks, dl,
                                 kind);
  });
}

namespace {

// The geometry shared by gather_blocks and scatter_blocks_add: blocks (A,dl), c (N, n*dl).
struct BlockGeometry {
  int64_t A, dl, N, kmax, n;
};

BlockGeometry block_geometry(const char* op, DType dt, const Tensor& blocks, const Tensor& c,
                             const Tensor& assign_slot, const Tensor& slot_expert) {
  BlockGeometry g{row_count(blocks), last_dim(blocks), row_count(slot_expert),
                  last_dim(slot_expert), 0};
  AM_CHECK(g.dl >= 1 && last_dim(c) % g.dl == 0, "{}: c {} does not split into blocks of {}", op,
           c.shape_str(), g.dl);
  g.n = last_dim(c) / g.dl;
  check_matrix(op, "slot_expert", slot_expert, DType::I32, g.N, g.kmax);
  check_matrix(op, "c", c, dt, g.N, g.n * g.dl);
  check_dtype(op, "blocks", blocks, dt);
  check_dtype(op, "assign_slot", assign_slot, DType::I32);
  AM_CHECK(assign_slot.numel() >= g.A, "{}: assign_slot {} holds fewer than A = {} entries", op,
           assign_slot.shape_str(), g.A);
  return g;
}

}  // namespace

void CpuBackend::gather_blocks(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) {
  const BlockGeometry g = block_geometry("gather_blocks", dtype_, out, c, assign_slot, slot_expert);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::gather_blocks<T>(out.as<T>(), c.as<T>(), assign_slot.as<int32_t>(),
                          slot_expert.as<int32_t>(), g.A, g.N, g.kmax, g.n, g.dl);
  });
}

void CpuBackend::scatter_blocks_add(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) {
  const BlockGeometry g =
      block_geometry("scatter_blocks_add", dtype_, src, dc, assign_slot, slot_expert);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::scatter_blocks_add<T>(dc.as<T>(), src.as<T>(), assign_slot.as<int32_t>(),
                               slot_expert.as<int32_t>(), g.A, g.N, g.kmax, g.n, g.dl);
  });
}

// ---- column writers ----

void CpuBackend::broadcast_columns(Tensor x, Tensor v, int64_t col) {
  const int64_t N = row_count(x), C = last_dim(x), m = v.numel();
  check_matrix("broadcast_columns", "x", x, dtype_, N, C);
  check_dtype("broadcast_columns", "v", v, dtype_);
  AM_CHECK(col >= 0 && col + m <= C, "broadcast_columns: columns [{}, {}) outside x {}", col,
           col + m, x.shape_str());
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::broadcast_columns<T>(x.as<T>(), v.as<T>(), N, C, m, col);
  });
}

void CpuBackend::copy_columns(Tensor dst, Tensor src, int64_t col) {
  const int64_t N = row_count(dst), C = last_dim(dst), w = last_dim(src);
  check_matrix("copy_columns", "dst", dst, dtype_, N, C);
  check_matrix("copy_columns", "src", src, dtype_, N, w);
  AM_CHECK(col >= 0 && col + w <= C, "copy_columns: columns [{}, {}) outside dst {}", col, col + w,
           dst.shape_str());
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::copy_columns<T>(dst.as<T>(), src.as<T>(), N, C, w, col);
  });
}

// ---- entropy ----

double CpuBackend::entropy_sum(Tensor p) {
  check_dtype("entropy_sum", "p", p, dtype_);
  enter();
  double r = 0;
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    r = cpu::entropy_sum<T>(p.as<T>(), p.numel());
  });
  return r;
}

void CpuBackend::entropy_backward(Tensor dp, Tensor p, double scale) {
  check_dtype("entropy_backward", "p", p, dtype_);
  check_numel("entropy_backward", "dp", dp, dtype_, p.numel());
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::entropy_backward<T>(dp.as<T>(), p.as<T>(), p.numel(), scale);
  });
}

}  // namespace am

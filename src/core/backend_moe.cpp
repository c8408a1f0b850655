// The op contract of core/backend.h, second half: expert selection, slot counts, activation norms
// with their block gather / scatter, the column writers, entropy and routing. Each op checks its
// arguments here, once for every backend, then calls its `_impl`. Checks of ids' values (an
// expert id out of range, a slot owned twice) need the data and stay in the backends.
#include "core/backend.h"

#include "core/op_checks.h"

namespace am {

using namespace op_checks;

// ---- top-k ----

void Backend::topk_select(Tensor slot_expert, Tensor slot_gate, Tensor rank_scores, Tensor gate_scores, int k,
                          int n_true) {
  const int64_t N = row_count(rank_scores), n_total = last_dim(rank_scores);
  float_matrix(*this, "topk_select", "rank_scores", rank_scores, N, n_total);
  float_matrix(*this, "topk_select", "gate_scores", gate_scores, N, n_total);
  index_matrix("topk_select", "slot_expert", slot_expert, N, k);
  float_matrix(*this, "topk_select", "slot_gate", slot_gate, N, k);
  AM_CHECK(k >= 1 && k <= n_total, "top-k with k = {} of {} experts", k, n_total);
  AM_CHECK(n_true >= 1 && n_true <= n_total, "top-k with {} true experts of {}", n_true, n_total);
  with_f32("topk_select", {&slot_expert, wr(&slot_gate), &rank_scores, &gate_scores},
           [&] { topk_select_impl(slot_expert, slot_gate, rank_scores, gate_scores, k, n_true); });
}

void Backend::topk_select_backward(Tensor dgate_scores, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate,
                                   int n_true) {
  const char* op = "topk_select_backward";
  const int64_t N = row_count(dgate_scores), n_total = last_dim(dgate_scores), k = last_dim(slot_gate);
  float_matrix(*this, op, "dgate_scores", dgate_scores, N, n_total);
  float_matrix(*this, op, "slot_gate", slot_gate, N, k);
  float_matrix(*this, op, "dslot_gate", dslot_gate, N, k);
  index_matrix(op, "slot_expert", slot_expert, N, k);
  AM_CHECK(n_true >= 1 && n_true <= n_total, "topk_select_backward: {} true experts of {}", n_true, n_total);
  with_f32("topk_select_backward", {rw(&dgate_scores), &dslot_gate, &slot_expert, &slot_gate},
           [&] { topk_select_backward_impl(dgate_scores, dslot_gate, slot_expert, slot_gate, n_true); });
}

// ---- top-p and expert choice ----

void Backend::topp_select(Tensor slot_expert, Tensor slot_gate, Tensor probs, double p, bool renormalize) {
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  float_matrix(*this, "topp_select", "probs", probs, N, n);
  index_matrix("topp_select", "slot_expert", slot_expert, N, kmax);
  float_matrix(*this, "topp_select", "slot_gate", slot_gate, N, kmax);
  AM_CHECK(p > 0 && p <= 1, "top-p with p = {}, expected 0 < p <= 1", p);
  AM_CHECK(kmax >= 1 && n >= 1, "top-p with kmax = {} slots over {} experts", kmax, n);
  with_f32("topp_select", {&slot_expert, wr(&slot_gate), &probs},
           [&] { topp_select_impl(slot_expert, slot_gate, probs, p, renormalize); });
}

void Backend::topp_select_backward(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert, Tensor slot_gate, Tensor probs,
                                   bool renormalize) {
  const char* op = "topp_select_backward";
  const int64_t N = row_count(probs), n = last_dim(probs), kmax = last_dim(slot_expert);
  float_matrix(*this, op, "probs", probs, N, n);
  float_matrix(*this, op, "dprobs", dprobs, N, n);
  index_matrix(op, "slot_expert", slot_expert, N, kmax);
  float_matrix(*this, op, "slot_gate", slot_gate, N, kmax);
  float_matrix(*this, op, "dslot_gate", dslot_gate, N, kmax);
  with_f32("topp_select_backward", {rw(&dprobs), &dslot_gate, &slot_expert, &slot_gate, &probs},
           [&] { topp_select_backward_impl(dprobs, dslot_gate, slot_expert, slot_gate, probs, renormalize); });
}

void Backend::expert_choice_select(Tensor slot_expert, Tensor slot_gate, Tensor probs, int64_t group,
                                   int64_t capacity) {
  const int64_t N = row_count(probs), n = last_dim(probs);
  float_matrix(*this, "expert_choice_select", "probs", probs, N, n);
  index_matrix("expert_choice_select", "slot_expert", slot_expert, N, n);
  float_matrix(*this, "expert_choice_select", "slot_gate", slot_gate, N, n);
  AM_CHECK(group >= 1 && N % group == 0, "expert choice: {} rows do not split into groups of {}", N, group);
  AM_CHECK(capacity >= 0 && capacity <= group, "expert choice: capacity {} outside [0, group = {}]", capacity, group);
  with_f32("expert_choice_select", {&slot_expert, wr(&slot_gate), &probs},
           [&] { expert_choice_select_impl(slot_expert, slot_gate, probs, group, capacity); });
}

void Backend::expert_choice_select_backward(Tensor dprobs, Tensor dslot_gate, Tensor slot_expert) {
  const char* op = "expert_choice_select_backward";
  const int64_t N = row_count(slot_expert), n = last_dim(slot_expert);
  index_matrix(op, "slot_expert", slot_expert, N, n);
  float_matrix(*this, op, "dslot_gate", dslot_gate, N, n);
  float_matrix(*this, op, "dprobs", dprobs, N, n);
  with_f32("expert_choice_select_backward", {rw(&dprobs), &dslot_gate, &slot_expert},
           [&] { expert_choice_select_backward_impl(dprobs, dslot_gate, slot_expert); });
}

// ---- capacity and counts ----

void Backend::capacity_route(Tensor routed, Tensor slot_expert, Tensor scores, int n_true, int64_t capacity) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert), n_scores = last_dim(scores);
  index_matrix("capacity_route", "slot_expert", slot_expert, N, kmax);
  index_matrix("capacity_route", "routed", routed, N, kmax);
  float_matrix(*this, "capacity_route", "scores", scores, N, n_scores);
  AM_CHECK(n_true >= 1 && n_true <= n_scores, "capacity_route: {} true experts, {} score columns", n_true, n_scores);
  AM_CHECK(capacity >= 0, "capacity_route: capacity {} < 0", capacity);
  with_f32("capacity_route", {&routed, &slot_expert, &scores},
           [&] { capacity_route_impl(routed, slot_expert, scores, n_true, capacity); });
}

Backend::SlotStats Backend::slot_stats(Tensor slot_expert, int n_total, int n_true) {
  index_matrix("slot_stats", "slot_expert", slot_expert, row_count(slot_expert), last_dim(slot_expert));
  AM_CHECK(n_true >= 0 && n_true <= n_total, "slot_stats: {} true ids of {}", n_true, n_total);
  return with_f32("slot_stats", {&slot_expert}, [&] { return slot_stats_impl(slot_expert, n_total, n_true); });
}

// ---- activation norms ----

namespace {

// c (N, n_blocks*dl): returns dl.
int64_t block_width(const char* op, const Tensor& c, int n_blocks) {
  AM_CHECK(n_blocks >= 1 && last_dim(c) % n_blocks == 0, "{}: c {} does not split into {} blocks", op, c.shape_str(),
           n_blocks);
  return last_dim(c) / n_blocks;
}

// The geometry shared by gather_blocks and scatter_blocks_add: blocks (A,dl), c (N, n*dl),
// slot_expert (N,kmax), assign_slot (>= A).
void check_blocks(const Backend& be, const char* op, const Tensor& blocks, const Tensor& c, const Tensor& assign_slot,
                  const Tensor& slot_expert) {
  const int64_t A = row_count(blocks), dl = last_dim(blocks), N = row_count(slot_expert);
  AM_CHECK(dl >= 1 && last_dim(c) % dl == 0, "{}: c {} does not split into blocks of {}", op, c.shape_str(), dl);
  index_matrix(op, "slot_expert", slot_expert, N, last_dim(slot_expert));
  float_matrix(be, op, "c", c, N, last_dim(c));
  be.check_float(op, "blocks", blocks);
  check_dtype(op, "assign_slot", assign_slot, DType::I32);
  AM_CHECK(assign_slot.numel() >= A, "{}: assign_slot {} holds fewer than A = {} entries", op, assign_slot.shape_str(),
           A);
}

}  // namespace

void Backend::block_norms(Tensor s, Tensor c, int n_blocks, NormKind kind) {
  const int64_t N = row_count(c), dl = block_width("block_norms", c, n_blocks), S = last_dim(s);
  float_matrix(*this, "block_norms", "c", c, N, n_blocks * dl);
  float_matrix(*this, "block_norms", "s", s, N, S);
  AM_CHECK(S >= n_blocks, "block_norms: s {} has fewer than {} columns", s.shape_str(), n_blocks);
  with_f32("block_norms", {rw(&s), &c}, [&] { block_norms_impl(s, c, n_blocks, kind); });
}

void Backend::block_norms_backward(Tensor dc, Tensor ds, Tensor c, Tensor s, int n_blocks, NormKind kind) {
  const char* op = "block_norms_backward";
  const int64_t N = row_count(c), dl = block_width(op, c, n_blocks), S = last_dim(s);
  float_matrix(*this, op, "c", c, N, n_blocks * dl);
  float_matrix(*this, op, "dc", dc, N, n_blocks * dl);
  float_matrix(*this, op, "s", s, N, S);
  float_matrix(*this, op, "ds", ds, N, S);
  AM_CHECK(S >= n_blocks, "block_norms_backward: s {} has fewer than {} columns", s.shape_str(), n_blocks);
  with_f32("block_norms_backward", {rw(&dc), &ds, &c, &s},
           [&] { block_norms_backward_impl(dc, ds, c, s, n_blocks, kind); });
}

void Backend::gather_blocks(Tensor out, Tensor c, Tensor assign_slot, Tensor slot_expert) {
  check_blocks(*this, "gather_blocks", out, c, assign_slot, slot_expert);
  with_f32("gather_blocks", {wr(&out), &c, &assign_slot, &slot_expert},
           [&] { gather_blocks_impl(out, c, assign_slot, slot_expert); });
}

void Backend::scatter_blocks_add(Tensor dc, Tensor src, Tensor assign_slot, Tensor slot_expert) {
  check_blocks(*this, "scatter_blocks_add", src, dc, assign_slot, slot_expert);
  with_f32("scatter_blocks_add", {rw(&dc), &src, &assign_slot, &slot_expert},
           [&] { scatter_blocks_add_impl(dc, src, assign_slot, slot_expert); });
}

// ---- column writers ----

void Backend::broadcast_columns(Tensor x, Tensor v, int64_t col) {
  const int64_t N = row_count(x), C = last_dim(x), m = v.numel();
  float_matrix(*this, "broadcast_columns", "x", x, N, C);
  check_float("broadcast_columns", "v", v);
  AM_CHECK(col >= 0 && col + m <= C, "broadcast_columns: columns [{}, {}) outside x {}", col, col + m, x.shape_str());
  with_f32("broadcast_columns", {rw(&x), &v}, [&] { broadcast_columns_impl(x, v, col); });
}

void Backend::copy_columns(Tensor dst, Tensor src, int64_t col) {
  const int64_t N = row_count(dst), C = last_dim(dst), w = last_dim(src);
  float_matrix(*this, "copy_columns", "dst", dst, N, C);
  float_matrix(*this, "copy_columns", "src", src, N, w);
  AM_CHECK(col >= 0 && col + w <= C, "copy_columns: columns [{}, {}) outside dst {}", col, col + w, dst.shape_str());
  with_f32("copy_columns", {rw(&dst), &src}, [&] { copy_columns_impl(dst, src, col); });
}

// ---- entropy ----

double Backend::entropy_sum(Tensor p) {
  check_float("entropy_sum", "p", p);
  return with_f32("entropy_sum", {&p}, [&] { return entropy_sum_impl(p); });
}

void Backend::entropy_backward(Tensor dp, Tensor p, double scale) {
  check_float("entropy_backward", "p", p);
  float_numel(*this, "entropy_backward", "dp", dp, p.numel());
  with_f32("entropy_backward", {rw(&dp), &p}, [&] { entropy_backward_impl(dp, p, scale); });
}

// ---- routing ----

int64_t Backend::route_build(Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                             Tensor slot_expert, int n_experts) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  index_matrix("route_build", "slot_expert", slot_expert, N, kmax);
  index_matrix("route_build", "slot_assign", slot_assign, N, kmax);
  check_dtype("route_build", "assign_slot", assign_slot, DType::I32);
  AM_CHECK(n_experts >= 1, "route_build: {} experts", n_experts);
  return with_f32("route_build", {&assign_slot, &slot_assign, &slot_expert},
                  [&] { return route_build_impl(assign_slot, slot_assign, expert_offsets, slot_expert, n_experts); });
}

void Backend::gather_rows(Tensor out, Tensor x, Tensor assign_slot, int kmax) {
  const int64_t A = row_count(out), d = last_dim(out), N = row_count(x);
  float_matrix(*this, "gather_rows", "out", out, A, d);
  float_matrix(*this, "gather_rows", "x", x, N, d);
  check_dtype("gather_rows", "assign_slot", assign_slot, DType::I32);
  AM_CHECK(assign_slot.numel() >= A && kmax >= 1,
           "gather_rows: assign_slot {} holds fewer than A = {} entries, or kmax = {} < 1", assign_slot.shape_str(), A,
           kmax);
  with_f32("gather_rows", {wr(&out), &x, &assign_slot}, [&] { gather_rows_impl(out, x, assign_slot, kmax); });
}

void Backend::combine(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) {
  const int64_t N = row_count(y), d = last_dim(y), A = row_count(expert_out), kmax = last_dim(slot_assign);
  check_float("combine", "y", y);
  float_matrix(*this, "combine", "expert_out", expert_out, A, d);
  index_matrix("combine", "slot_assign", slot_assign, N, kmax);
  float_matrix(*this, "combine", "slot_gate", slot_gate, N, kmax);
  with_f32("combine", {wr(&y), &expert_out, &slot_gate, &slot_assign},
           [&] { combine_impl(y, expert_out, slot_gate, slot_assign); });
}

void Backend::combine_backward(Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out, Tensor slot_gate,
                               Tensor slot_assign) {
  const char* op = "combine_backward";
  const int64_t N = row_count(dy), d = last_dim(dy), A = row_count(expert_out), kmax = last_dim(slot_assign);
  float_matrix(*this, op, "dy", dy, N, d);
  float_matrix(*this, op, "expert_out", expert_out, A, d);
  float_matrix(*this, op, "dexpert_out", dexpert_out, A, d);
  index_matrix(op, "slot_assign", slot_assign, N, kmax);
  float_matrix(*this, op, "slot_gate", slot_gate, N, kmax);
  float_matrix(*this, op, "dslot_gate", dslot_gate, N, kmax);
  with_f32("combine_backward", {wr(&dexpert_out), wr(&dslot_gate), &dy, &expert_out, &slot_gate, &slot_assign},
           [&] { combine_backward_impl(dexpert_out, dslot_gate, dy, expert_out, slot_gate, slot_assign); });
}

void Backend::scatter_rows_add(Tensor dx, Tensor src, Tensor slot_assign) {
  const int64_t N = row_count(dx), d = last_dim(dx), A = row_count(src), kmax = last_dim(slot_assign);
  check_float("scatter_rows_add", "dx", dx);
  float_matrix(*this, "scatter_rows_add", "src", src, A, d);
  index_matrix("scatter_rows_add", "slot_assign", slot_assign, N, kmax);
  with_f32("scatter_rows_add", {rw(&dx), &src, &slot_assign}, [&] { scatter_rows_add_impl(dx, src, slot_assign); });
}

}  // namespace am

// CUDA expert selection and routing vs the CPU reference (fp32 on both sides), op by op, on fresh
// random inputs: top-k (null experts, selection bias, NaN ranks), top-p, expert choice, capacity,
// slot counts, route_build, gather / combine / scatter, block norms and block gather / scatter.
//
// What must agree, and how closely:
//  - every integer output (slot ids, routed ids, assignment order, slot_assign, offsets, A, counts):
//    exactly. Scores on a small integer grid make ties frequent, to exercise "ties to the lower
//    index"; the order is a strict total order, so there is one right answer.
//  - copies (gather_rows, gather_blocks, expert-choice gates) and scatter_blocks_add (the same
//    float additions in the same order): bit for bit.
//  - gates, combine, scatter_rows_add, L1/L2 norms and the backward ops (double arithmetic rounded
//    to fp32; the GPU may differ in exp's last double bit or sum in another order): 1e-6 relative
//    + 1e-7 absolute; dot products over d (combine_backward's dslot_gate): 1e-5 relative + 1e-6
//    absolute. Linf norms: exactly (a max is exact).
// Inputs of each backward are the CPU's forward outputs, uploaded to both backends, so that the
// backward is compared on identical inputs.
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

constexpr double kRtol = 1e-6, kAtol = 1e-7;        // fp32 rounding of double arithmetic
constexpr double kDotRtol = 1e-5, kDotAtol = 1e-6;  // double dot products over d, another order

// The first index where a and b differ (bitwise for floats, so NaNs compare), or -1.
template <typename T>
int64_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
  }
  return -1;
}

template <typename T>
void require_same(const std::vector<T>& gpu, const std::vector<T>& cpu, const char* what) {
  const int64_t at = first_difference(gpu, cpu);
  INFO(what << ": sizes " << gpu.size() << " / " << cpu.size() << ", first difference at " << at
            << (at >= 0 && size_t(at) < gpu.size() && size_t(at) < cpu.size()
                    ? fmt::format(": cuda {} cpu {}", gpu[size_t(at)], cpu[size_t(at)])
                    : std::string()));
  REQUIRE(at == -1);
}

template <typename T = float>
void require_twin_same(Pair& p, const Twin& t, const char* what) {
  require_same(t.from_gpu<T>(p), t.from_cpu<T>(p), what);
}

// Values on the grid {0, 1, ..., levels-1} (+ offset): frequent exact ties.
std::vector<float> grid_values(size_t n, uint64_t seed, int levels, float offset = 0.f) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(0, levels - 1);
  std::vector<float> v(n);
  for (auto& x : v) x = float(d(rng)) + offset;
  return v;
}

// Rows of non-negative weights normalised to sum 1 (in float): router probabilities.
std::vector<float> normalise_rows(std::vector<float> w, int64_t N, int64_t n) {
  for (int64_t t = 0; t < N; ++t) {
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += w[t * n + j];
    for (int64_t j = 0; j < n; ++j) w[t * n + j] = s > 0 ? float(w[t * n + j] / s) : 0.f;
  }
  return w;
}

std::vector<float> softmax_probs(int64_t N, int64_t n, uint64_t seed) {
  std::vector<float> z = randn(N * n, seed, 2.f);
  for (auto& x : z) x = std::exp(x);
  return normalise_rows(z, N, n);
}

// A slot array (N, kmax) of ids in [0, n_ids), each slot empty (-1) with probability p_empty;
// ids within a row may repeat (the ops must not assume otherwise).
std::vector<int32_t> random_slots(int64_t N, int64_t kmax, int n_ids, double p_empty, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> id(0, n_ids - 1);
  std::bernoulli_distribution empty(p_empty);
  std::vector<int32_t> s(N * kmax);
  for (auto& e : s) e = empty(rng) ? -1 : id(rng);
  return s;
}

// The CPU's route of a slot array: assign_slot[0, A), slot_assign, offsets.
struct HostRoute {
  std::vector<int32_t> assign_slot, slot_assign;
  std::vector<int64_t> offsets;
  int64_t A = 0;
};

HostRoute cpu_route(Pair& p, const std::vector<int32_t>& slots, int64_t N, int64_t kmax, int n) {
  Twin ex(p, {N, kmax}, slots), sa(p, {N, kmax}, std::vector<int32_t>(N * kmax, 0));
  Twin as(p, {std::max<int64_t>(N * kmax, 1)}, std::vector<int32_t>(std::max<int64_t>(N * kmax, 1), 0));
  HostRoute r;
  r.A = p.cpu->route_build(as.c, sa.c, r.offsets, ex.c, n);
  r.assign_slot = as.from_cpu<int32_t>(p);
  r.assign_slot.resize(size_t(r.A));
  r.slot_assign = sa.from_cpu<int32_t>(p);
  return r;
}

}  // namespace

// ---- selection ----

TEST_CASE("cuda topk_select and its backward match the CPU", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N;
    int n_total, k, n_true;
    int levels;          // 0: normal scores, else a grid of that many values (ties)
    bool bias;           // separate rank and gate scores
    bool nan_ranks;      // some rank scores NaN (with separate, finite gate scores)
    bool null_favoured;  // null ids ranked above the true ones in every other row
  };
  const Case cases[] = {
      {64, 8, 2, 8, 0, false, false, false},    {1000, 8, 2, 6, 3, true, false, false},
      {37, 64, 8, 60, 4, false, false, false},  {5, 256, 16, 256, 0, true, false, false},
      {33, 16, 16, 12, 2, false, false, false}, {1, 3, 1, 1, 0, false, false, false},
      {129, 12, 4, 4, 0, true, true, false},    {50, 10, 3, 4, 2, false, false, true},
      {70, 40, 5, 33, 1, false, false, false},  {0, 8, 2, 8, 0, false, false, false},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    INFO("N " << c.N << " n_total " << c.n_total << " k " << c.k << " n_true " << c.n_true << " levels " << c.levels);
    const int64_t N = c.N, n = c.n_total, k = c.k;
    std::vector<float> rank = c.levels ? grid_values(N * n, ++seed, c.levels) : randn(N * n, ++seed);
    if (c.null_favoured) {
      for (int64_t t = 0; t < N; t += 2) {
        for (int64_t e = c.n_true; e < n; ++e) rank[t * n + e] += 10.f;
      }
    }
    if (c.nan_ranks) {
      std::mt19937_64 rng(++seed);
      for (auto& x : rank) {
        if (rng() % 8 == 0) x = NAN;
      }
      for (int64_t e = 0; e < n; ++e) rank[e] = NAN;  // a row of NaNs: ids in order
    }
    Twin r(p, {N, n}, rank);
    Twin g(p, {N, n}, c.bias || c.nan_ranks ? randn(N * n, ++seed) : rank);
    Twin ex(p, {N, k}, std::vector<int32_t>(N * k, 77)), gate(p, {N, k}, randn(N * k, ++seed));
    p.gpu->topk_select(ex.g, gate.g, r.g, c.bias || c.nan_ranks ? g.g : r.g, c.k, c.n_true);
    p.cpu->topk_select(ex.c, gate.c, r.c, c.bias || c.nan_ranks ? g.c : r.c, c.k, c.n_true);
    require_twin_same<int32_t>(p, ex, "slot_expert");
    require_twin_close(p, gate, kRtol, kAtol);

    // Backward on the CPU's selection.
    const std::vector<int32_t> ex_h = ex.from_cpu<int32_t>(p);
    const std::vector<float> gate_h = gate.from_cpu(p);
    Twin ex2(p, {N, k}, ex_h), gate2(p, {N, k}, gate_h), dgate(p, {N, k}, randn(N * k, ++seed));
    Twin dscores(p, {N, n}, randn(N * n, ++seed));
    p.gpu->topk_select_backward(dscores.g, dgate.g, ex2.g, gate2.g, c.n_true);
    p.cpu->topk_select_backward(dscores.c, dgate.c, ex2.c, gate2.c, c.n_true);
    require_twin_close(p, dscores, kRtol, kAtol);
  }
  // The CPU's argument checks hold on the GPU too.
  Twin r(p, {4, 3}, randn(12, 1));
  Twin ex(p, {4, 4}, std::vector<int32_t>(16, 0)), gate(p, {4, 4}, randn(16, 2));
  CHECK_THROWS_AS(p.gpu->topk_select(ex.g, gate.g, r.g, r.g, 4, 3), InternalError);  // k > n_total
}

TEST_CASE("cuda topp_select and its backward match the CPU", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N;
    int n, kmax;
    double top_p;
    bool renormalize;
    int levels;  // 0: softmax of random logits, else grid weights (ties)
  };
  const Case cases[] = {
      {64, 8, 8, 0.5, true, 0},  {300, 8, 3, 0.9, false, 0}, {77, 16, 20, 1.0, true, 0},
      {40, 8, 4, 0.6, true, 3},  {1, 5, 1, 0.3, false, 0},   {50, 64, 64, 0.95, false, 2},
      {45, 6, 6, 0.7, false, 1}, {33, 40, 7, 0.8, true, 4},  {0, 8, 4, 0.5, true, 0},
  };
  uint64_t seed = 200;
  for (const Case& c : cases) {
    INFO("N " << c.N << " n " << c.n << " kmax " << c.kmax << " p " << c.top_p << " renormalize " << c.renormalize
              << " levels " << c.levels);
    const int64_t N = c.N, n = c.n, kmax = c.kmax;
    std::vector<float> probs =
        c.levels ? normalise_rows(grid_values(N * n, ++seed, c.levels, 1.f), N, n) : softmax_probs(N, n, ++seed);
    if (N > 3) std::fill(probs.begin() + 3 * n, probs.begin() + 4 * n, 0.f);  // a zero row
    Twin pr(p, {N, n}, probs);
    Twin ex(p, {N, kmax}, std::vector<int32_t>(N * kmax, 77)), gate(p, {N, kmax}, randn(N * kmax, ++seed));
    p.gpu->topp_select(ex.g, gate.g, pr.g, c.top_p, c.renormalize);
    p.cpu->topp_select(ex.c, gate.c, pr.c, c.top_p, c.renormalize);
    require_twin_same<int32_t>(p, ex, "slot_expert");
    require_twin_close(p, gate, kRtol, kAtol);

    Twin ex2(p, {N, kmax}, ex.from_cpu<int32_t>(p)), gate2(p, {N, kmax}, gate.from_cpu(p));
    Twin dgate(p, {N, kmax}, randn(N * kmax, ++seed)), dprobs(p, {N, n}, randn(N * n, ++seed));
    p.gpu->topp_select_backward(dprobs.g, dgate.g, ex2.g, gate2.g, pr.g, c.renormalize);
    p.cpu->topp_select_backward(dprobs.c, dgate.c, ex2.c, gate2.c, pr.c, c.renormalize);
    require_twin_close(p, dprobs, kRtol, kAtol);
  }
}

TEST_CASE("cuda expert_choice_select and its backward match the CPU", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N;
    int n;
    int64_t group, capacity;
    int levels;  // 0: softmax probabilities, else a grid (ties; 1: every entry equal)
  };
  const Case cases[] = {
      {64, 8, 64, 16, 0},  // groups = the batch
      {64, 8, 16, 4, 0},   // groups = sequences (B = 4, T = 16)
      {64, 8, 16, 4, 3},  {96, 8, 32, 9, 2},   {32, 4, 16, 5, 1}, {30, 6, 10, 0, 0},     {30, 6, 10, 10, 0},
      {30, 6, 1, 1, 0},   {257, 8, 257, 3, 2}, {1, 3, 1, 1, 0},   {600, 16, 200, 37, 4}, {0, 4, 4, 2, 0},
  };
  uint64_t seed = 300;
  for (const Case& c : cases) {
    INFO("N " << c.N << " n " << c.n << " group " << c.group << " capacity " << c.capacity << " levels " << c.levels);
    const int64_t N = c.N, n = c.n;
    const std::vector<float> probs = c.levels ? grid_values(N * n, ++seed, c.levels, 1.f) : softmax_probs(N, n, ++seed);
    Twin pr(p, {N, n}, probs);
    Twin ex(p, {N, n}, std::vector<int32_t>(N * n, 77)), gate(p, {N, n}, randn(N * n, ++seed));
    p.gpu->expert_choice_select(ex.g, gate.g, pr.g, c.group, c.capacity);
    p.cpu->expert_choice_select(ex.c, gate.c, pr.c, c.group, c.capacity);
    require_twin_same<int32_t>(p, ex, "slot_expert");
    require_twin_same(p, gate, "slot_gate");

    Twin ex2(p, {N, n}, ex.from_cpu<int32_t>(p)), dgate(p, {N, n}, randn(N * n, ++seed));
    Twin dprobs(p, {N, n}, randn(N * n, ++seed));
    p.gpu->expert_choice_select_backward(dprobs.g, dgate.g, ex2.g);
    p.cpu->expert_choice_select_backward(dprobs.c, dgate.c, ex2.c);
    require_twin_same(p, dprobs, "dprobs");
  }
  Twin pr(p, {10, 4}, softmax_probs(10, 4, 1));
  Twin ex(p, {10, 4}, std::vector<int32_t>(40, 0)), gate(p, {10, 4}, randn(40, 2));
  CHECK_THROWS_AS(p.gpu->expert_choice_select(ex.g, gate.g, pr.g, 3, 1), InternalError);  // 10 % 3 != 0
  CHECK_THROWS_AS(p.gpu->expert_choice_select(ex.g, gate.g, pr.g, 5, 6), InternalError);  // capacity > group
}

TEST_CASE("cuda capacity_route matches the CPU: null ids, drops, ties", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N, kmax;
    int n_ids, n_true, n_scores;
    int64_t capacity;
    int levels;  // 0: normal scores, else a grid (ties between slots of one expert)
    int mode;    // 0: random slots, 1: every slot holds expert 2, 2: every slot empty
  };
  const Case cases[] = {
      {200, 2, 8, 8, 8, 0, 0, 0},     // no cap: only null ids would change
      {200, 2, 8, 8, 8, 30, 0, 0},    // about 50 per expert: drops
      {200, 2, 8, 8, 8, 100, 0, 0},   // no expert over capacity
      {300, 4, 10, 8, 10, 40, 3, 0},  // null ids 8, 9; ties
      {300, 4, 10, 8, 8, 25, 2, 0},   // scores over the true experts only
      {64, 2, 8, 8, 8, 5, 2, 1},      // all tokens to one expert, ties
      {64, 2, 8, 8, 8, 5, 1, 1},      // ... every score equal: the lowest slots stay
      {64, 3, 8, 6, 6, 7, 0, 2},      // all slots empty
      {1, 1, 4, 4, 4, 1, 0, 0},      {0, 2, 4, 4, 4, 3, 0, 0},
  };
  uint64_t seed = 400;
  for (const Case& c : cases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n_true " << c.n_true << " capacity " << c.capacity << " levels "
              << c.levels << " mode " << c.mode);
    const int64_t N = c.N, kmax = c.kmax;
    std::vector<int32_t> slots = random_slots(N, kmax, c.n_ids, 0.1, ++seed);
    if (c.mode == 1) std::fill(slots.begin(), slots.end(), 2);
    if (c.mode == 2) std::fill(slots.begin(), slots.end(), -1);
    Twin ex(p, {N, kmax}, slots), routed(p, {N, kmax}, std::vector<int32_t>(N * kmax, 77));
    Twin sc(p, {N, c.n_scores},
            c.levels ? grid_values(N * c.n_scores, ++seed, c.levels) : randn(N * c.n_scores, ++seed));
    p.gpu->capacity_route(routed.g, ex.g, sc.g, c.n_true, c.capacity);
    p.cpu->capacity_route(routed.c, ex.c, sc.c, c.n_true, c.capacity);
    require_twin_same<int32_t>(p, routed, "routed");
  }
}

TEST_CASE("cuda slot_stats matches the CPU", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N, kmax;
    int n_total, n_true;
    double p_empty;
    int mode;  // 0: random, 1: all empty, 2: all on id 0
  };
  const Case cases[] = {
      {500, 2, 8, 8, 0.1, 0},       {300, 4, 12, 8, 0.3, 0}, {100, 3, 10, 0, 0.2, 0},       {64, 2, 8, 6, 0, 1},
      {64, 2, 8, 6, 0, 2},          {1, 1, 1, 1, 0, 0},      {20000, 2, 300, 256, 0.05, 0}, {0, 2, 8, 8, 0, 0},
      {3000, 2, 9000, 9000, 0.1, 0}};  // > 8192 ids: global atomics, no shared histogram
  uint64_t seed = 500;
  for (const Case& c : cases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n_total " << c.n_total << " n_true " << c.n_true << " mode " << c.mode);
    std::vector<int32_t> slots = random_slots(c.N, c.kmax, c.n_total, c.p_empty, ++seed);
    if (c.mode == 1) std::fill(slots.begin(), slots.end(), -1);
    if (c.mode == 2) std::fill(slots.begin(), slots.end(), 0);
    Twin ex(p, {c.N, c.kmax}, slots);
    const Backend::SlotStats g = p.gpu->slot_stats(ex.g, c.n_total, c.n_true);
    const Backend::SlotStats h = p.cpu->slot_stats(ex.c, c.n_total, c.n_true);
    require_same(g.per_id, h.per_id, "per_id");
    CHECK(g.rows_without_true == h.rows_without_true);
  }
  Twin bad(p, {2, 2}, std::vector<int32_t>{0, 1, 9, -1});
  CHECK_THROWS_AS(p.gpu->slot_stats(bad.g, 8, 8), InternalError);
}

// ---- routing ----

TEST_CASE("cuda route_build matches the CPU: order, offsets, empty experts and slots", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N, kmax;
    int n;
    double p_empty;
    int mode;  // 0: random, 1: expert 3 never chosen, 2: all to expert 1, 3: all empty
  };
  const Case cases[] = {{64, 2, 8, 0.0, 0},    {1000, 2, 8, 0.2, 0},    {333, 4, 16, 0.3, 1},
                        {50, 2, 8, 0.0, 2},    {50, 3, 8, 0.0, 3},      {1, 1, 1, 0.0, 0},
                        {257, 8, 256, 0.1, 0}, {70000, 2, 64, 0.05, 0}, {0, 2, 8, 0.0, 0}};
  uint64_t seed = 600;
  for (const Case& c : cases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n " << c.n << " mode " << c.mode);
    const int64_t N = c.N, kmax = c.kmax, cap = N * kmax + 5;
    std::vector<int32_t> slots = random_slots(N, kmax, c.n, c.p_empty, ++seed);
    for (auto& e : slots) {
      if (c.mode == 1 && e == 3) e = 4;
      if (c.mode == 2) e = 1;
      if (c.mode == 3) e = -1;
    }
    Twin ex(p, {N, kmax}, slots), sa(p, {N, kmax}, std::vector<int32_t>(N * kmax, 77));
    Twin as(p, {cap}, std::vector<int32_t>(cap, 12345));  // entries past A must stay untouched
    std::vector<int64_t> off_g, off_c;
    const int64_t A_g = p.gpu->route_build(as.g, sa.g, off_g, ex.g, c.n);
    const int64_t A_c = p.cpu->route_build(as.c, sa.c, off_c, ex.c, c.n);
    REQUIRE(A_g == A_c);
    require_same(off_g, off_c, "expert_offsets");
    require_twin_same<int32_t>(p, as, "assign_slot");
    require_twin_same<int32_t>(p, sa, "slot_assign");
  }
  Twin ex(p, {2, 2}, std::vector<int32_t>{0, 1, 8, -1}), sa(p, {2, 2}, std::vector<int32_t>(4, 0));
  Twin as(p, {4}, std::vector<int32_t>(4, 0)), small(p, {2}, std::vector<int32_t>(2, 0));
  std::vector<int64_t> off;
  CHECK_THROWS_AS(p.gpu->route_build(as.g, sa.g, off, ex.g, 8), InternalError);     // id 8 of 8 experts
  CHECK_THROWS_AS(p.gpu->route_build(small.g, sa.g, off, ex.g, 9), InternalError);  // A = 3 > 2 entries
}

TEST_CASE("cuda gather_rows, combine, combine_backward and scatter_rows_add match the CPU", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N, kmax;
    int n;
    int64_t d;
    double p_empty;
  };
  const Case cases[] = {{64, 2, 8, 32, 0.0}, {100, 2, 8, 7, 0.2},   {37, 4, 16, 130, 0.3}, {1, 1, 1, 1, 0.0},
                        {50, 3, 8, 64, 1.0}, {300, 8, 64, 65, 0.1}, {0, 2, 8, 16, 0.0}};
  uint64_t seed = 700;
  for (const Case& c : cases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n " << c.n << " d " << c.d << " p_empty " << c.p_empty);
    const int64_t N = c.N, kmax = c.kmax, d = c.d;
    const HostRoute r = cpu_route(p, random_slots(N, kmax, c.n, c.p_empty, ++seed), N, kmax, c.n);
    const int64_t A = r.A;
    Twin as(p, {A}, r.assign_slot), sa(p, {N, kmax}, r.slot_assign);
    Twin x(p, {N, d}, randn(N * d, ++seed)), gate(p, {N, kmax}, randn(N * kmax, ++seed));

    Twin xa(p, {A, d}, randn(A * d, ++seed));
    p.gpu->gather_rows(xa.g, x.g, as.g, int(kmax));
    p.cpu->gather_rows(xa.c, x.c, as.c, int(kmax));
    require_twin_same(p, xa, "gather_rows");

    Twin eo(p, {A, d}, randn(A * d, ++seed)), y(p, {N, d}, randn(N * d, ++seed));
    p.gpu->combine(y.g, eo.g, gate.g, sa.g);
    p.cpu->combine(y.c, eo.c, gate.c, sa.c);
    require_twin_close(p, y, kRtol, kAtol);

    Twin dy(p, {N, d}, randn(N * d, ++seed)), deo(p, {A, d}, randn(A * d, ++seed));
    Twin dgate(p, {N, kmax}, randn(N * kmax, ++seed));
    p.gpu->combine_backward(deo.g, dgate.g, dy.g, eo.g, gate.g, sa.g);
    p.cpu->combine_backward(deo.c, dgate.c, dy.c, eo.c, gate.c, sa.c);
    require_twin_close(p, deo, kRtol, kAtol);
    require_twin_close(p, dgate, kDotRtol, kDotAtol);
    // The same bits on a second run (fixed reduction order).
    const std::vector<float> first = dgate.from_gpu(p);
    p.gpu->combine_backward(deo.g, dgate.g, dy.g, eo.g, gate.g, sa.g);
    require_same(dgate.from_gpu(p), first, "dslot_gate, second run");

    Twin dx(p, {N, d}, randn(N * d, ++seed)), src(p, {A, d}, randn(A * d, ++seed));
    p.gpu->scatter_rows_add(dx.g, src.g, sa.g);
    p.cpu->scatter_rows_add(dx.c, src.c, sa.c);
    require_twin_close(p, dx, kRtol, kAtol);
  }
}

// ---- activation norms ----

TEST_CASE("cuda block_norms and block_norms_backward match the CPU for L2, L1 and Linf", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N;
    int nb;
    int64_t dl, S;
    int levels;  // 0: normal entries, else a grid around 0 (ties in |c|, zero blocks)
    bool nans;   // Linf only: NaN entries, one at the start of a block
  };
  const Case cases[] = {{16, 4, 8, 4, 0, false},  {33, 8, 37, 10, 0, false}, {5, 3, 1, 3, 0, false},
                        {7, 2, 100, 2, 3, false}, {1, 1, 64, 1, 0, false},   {40, 6, 3, 6, 2, false},
                        {9, 4, 45, 5, 0, true},   {0, 4, 8, 4, 0, false}};
  using K = Backend::NormKind;
  uint64_t seed = 800;
  for (const Case& c : cases) {
    for (K kind : {K::L2, K::L1, K::Linf}) {
      if (c.nans && kind != K::Linf) continue;
      INFO("N " << c.N << " blocks " << c.nb << " dl " << c.dl << " S " << c.S << " levels " << c.levels << " kind "
                << int(kind));
      const int64_t N = c.N, C = c.nb * c.dl;
      std::vector<float> ch =
          c.levels ? grid_values(N * C, ++seed, 2 * c.levels + 1, -float(c.levels)) : randn(N * C, ++seed);
      if (N > 0) std::fill(ch.begin(), ch.begin() + c.dl, 0.f);  // a zero block
      if (c.nans) {
        for (size_t i = 3; i < ch.size(); i += 7) ch[i] = NAN;
        ch[size_t(c.dl)] = NAN;  // block 1 starts with NaN
      }
      Twin cc(p, {N, C}, ch), s(p, {N, c.S}, randn(N * c.S, ++seed));
      p.gpu->block_norms(s.g, cc.g, c.nb, kind);
      p.cpu->block_norms(s.c, cc.c, c.nb, kind);
      if (kind == K::Linf) {
        require_twin_same(p, s, "Linf norms");
      } else {
        require_twin_close(p, s, kRtol, kAtol);
      }

      Twin s2(p, {N, c.S}, s.from_cpu(p)), ds(p, {N, c.S}, randn(N * c.S, ++seed));
      Twin dc(p, {N, C}, randn(N * C, ++seed));
      p.gpu->block_norms_backward(dc.g, ds.g, cc.g, s2.g, c.nb, kind);
      p.cpu->block_norms_backward(dc.c, ds.c, cc.c, s2.c, c.nb, kind);
      require_twin_close(p, dc, kRtol, kAtol);
    }
  }
}

TEST_CASE("cuda gather_blocks and scatter_blocks_add match the CPU bit for bit", "[cuda]") {
  Pair p;
  struct Case {
    int64_t N, kmax;
    int n;
    int64_t dl;
    double p_empty;
  };
  // Slot ids repeat within a row, so several assignments can share a block of dc.
  const Case cases[] = {
      {20, 2, 8, 16, 0.0}, {50, 4, 4, 5, 0.1}, {1, 1, 3, 1, 0.0}, {200, 3, 2, 40, 0.2}, {30, 2, 8, 8, 1.0}};
  uint64_t seed = 900;
  for (const Case& c : cases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n " << c.n << " dl " << c.dl << " p_empty " << c.p_empty);
    const int64_t N = c.N, kmax = c.kmax, dl = c.dl;
    const std::vector<int32_t> slots = random_slots(N, kmax, c.n, c.p_empty, ++seed);
    const HostRoute r = cpu_route(p, slots, N, kmax, c.n);
    const int64_t A = r.A;
    Twin ex(p, {N, kmax}, slots), as(p, {A}, r.assign_slot);
    Twin cc(p, {N, c.n * dl}, randn(N * c.n * dl, ++seed)), out(p, {A, dl}, randn(A * dl, ++seed));
    p.gpu->gather_blocks(out.g, cc.g, as.g, ex.g);
    p.cpu->gather_blocks(out.c, cc.c, as.c, ex.c);
    require_twin_same(p, out, "gather_blocks");

    Twin src(p, {A, dl}, randn(A * dl, ++seed));
    p.gpu->scatter_blocks_add(cc.g, src.g, as.g, ex.g);
    p.cpu->scatter_blocks_add(cc.c, src.c, as.c, ex.c);
    require_twin_same(p, cc, "scatter_blocks_add");
  }
}

// The routing ops of cuda/routing.cu in bf16 storage (run.precision bf16: BF16 activations; core/
// backend.h "bf16 storage") vs the CPU op on the same inputs (the CPU widens every BF16 tensor,
// runs its fp32 op and rounds each BF16 output once: the spec). Every F32/BF16 combination of
// each op's float arguments is run: the ones CudaBackend computes natively and the ones it
// routes through fp32 copies (routing.cu says which).
//
// What must agree, and how closely (|cuda - cpu| <= atol + rtol |cpu|):
//  - gather_rows, gather_blocks: bit for bit (copies; F32 -> BF16 rounds to nearest even on both);
//  - combine's y and combine_backward's dexpert_out: bit for bit (double sums of exact products in
//    the CPU's order, then the same roundings);
//  - F32 outputs of sums in another order: the fp32 tests' tolerances (test_cuda_moe.cpp): 1e-6
//    relative + 1e-7 absolute, dot products (dslot_gate) 1e-5 relative + 1e-6 absolute;
//  - BF16 outputs of those sums: one bf16 ulp (rtol 8e-3 >= 2^-7, the largest ulp relative to the
//    value), since fp32 values one fp32 ulp apart may round to neighbouring bf16 values; + 1e-6
//    absolute;
//  - Linf norms: exact (a max).
// And the native paths are native: the simulator counts the same kernel launches for an op on the
// model's BF16 tensors as on fp32 ones (a with_f32 fallback adds convert launches).
#include "core/bf16.h"
#include "core/device_counts.h"
#include "cuda_test_util.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <random>
#include <vector>

using namespace am;
using namespace am::test;

namespace {

constexpr double kRtol = 1e-6, kAtol = 1e-7;        // fp32 outputs
constexpr double kDotRtol = 1e-5, kDotAtol = 1e-6;  // fp32 dot products over d
constexpr double kBfRtol = 8e-3, kBfAtol = 1e-6;    // BF16 outputs: one bf16 ulp
constexpr DType F = DType::F32, B = DType::BF16;

using Arg = FloatTwin;  // one float tensor on both backends in dtype dt

void require_same(Pair& p, const Arg& a, const char* what) {
  const std::vector<float> x = a.gpu(p), y = a.cpu(p);
  REQUIRE(x.size() == y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    INFO(what << " entry " << i << ": cuda " << x[i] << " cpu " << y[i]);
    REQUIRE(std::memcmp(&x[i], &y[i], sizeof(float)) == 0);
  }
}

// Close within the fp32 tolerance given, or one bf16 ulp for a BF16 tensor.
void require_near(Pair& p, const Arg& a, double rtol, double atol, const char* what) {
  INFO(what << " (" << dtype_name(a.g.dtype) << ")");
  if (a.g.dtype == B) {
    am::test::require_close(a.gpu(p), a.cpu(p), kBfRtol, kBfAtol);
  } else {
    am::test::require_close(a.gpu(p), a.cpu(p), rtol, atol);
  }
}

// The dtypes of n arguments for combination `mask` (bit i set: argument i is BF16).
std::vector<DType> dtypes(unsigned mask, int n) {
  std::vector<DType> v;
  for (int i = 0; i < n; ++i) v.push_back((mask >> i) & 1u ? B : F);
  return v;
}

std::string describe(const std::vector<DType>& dts) {
  std::string s;
  for (DType dt : dts) s += std::string(dtype_name(dt)) + " ";
  return s;
}

// A slot array (N, kmax) of ids in [0, n) (repeats allowed), empty with probability p_empty.
std::vector<int32_t> random_slots(int64_t N, int64_t kmax, int n, double p_empty, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> id(0, n - 1);
  std::bernoulli_distribution empty(p_empty);
  std::vector<int32_t> s(static_cast<size_t>(N * kmax));
  for (auto& e : s) e = empty(rng) ? -1 : id(rng);
  return s;
}

// The CPU's route of a slot array, as tensors on both backends.
struct Route {
  int64_t A = 0;
  Twin ex, as, sa;
};

Route make_route(Pair& p, int64_t N, int64_t kmax, int n, double p_empty, uint64_t seed) {
  const std::vector<int32_t> slots = random_slots(N, kmax, n, p_empty, seed);
  Twin ex(p, {N, kmax}, slots), sa(p, {N, kmax}, std::vector<int32_t>(slots.size(), 0));
  Twin as(p, {N * kmax}, std::vector<int32_t>(slots.size(), 0));
  std::vector<int64_t> offsets;
  const int64_t A = p.cpu->route_build(as.c, sa.c, offsets, ex.c, n);
  const std::vector<int32_t> as_h = as.from_cpu<int32_t>(p), sa_h = sa.from_cpu<int32_t>(p);
  return Route{A, std::move(ex), Twin(p, {N * kmax}, as_h), Twin(p, {N, kmax}, sa_h)};
}

uint64_t kernels_of(const std::function<void()>& f) {
  reset_device_counts();
  f();
  return device_counts()->kernel_launches;
}

struct RowCase {
  int64_t N, kmax;
  int n;
  int64_t d;
  double p_empty;
};
// kmax 1: the expert exchange's permutations; p_empty 1: no assignment at all.
const RowCase kRowCases[] = {{40, 2, 8, 33, 0.1}, {17, 4, 4, 64, 0.3}, {25, 1, 25, 16, 0.0}, {9, 2, 4, 8, 1.0}};

}  // namespace

TEST_CASE("cuda bf16 storage: gather_rows and combine match the CPU in every dtype combination", "[cuda]") {
  Pair p(true);
  uint64_t seed = 1100;
  for (const RowCase& c : kRowCases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n " << c.n << " d " << c.d << " p_empty " << c.p_empty);
    const int64_t N = c.N, kmax = c.kmax, d = c.d;
    Route r = make_route(p, N, kmax, c.n, c.p_empty, ++seed);
    const int64_t A = r.A;
    for (unsigned m = 0; m < 4; ++m) {  // out, x
      const std::vector<DType> dt = dtypes(m, 2);
      INFO("gather_rows " << describe(dt));
      Arg out(p, dt[0], {A, d}, randn(A * d, ++seed)), x(p, dt[1], {N, d}, randn(N * d, ++seed));
      p.gpu->gather_rows(out.g, x.g, r.as.g.rows(0, A), int(kmax));
      p.cpu->gather_rows(out.c, x.c, r.as.c.rows(0, A), int(kmax));
      require_same(p, out, "gather_rows");
    }
    for (unsigned m = 0; m < 8; ++m) {  // y, expert_out, slot_gate
      const std::vector<DType> dt = dtypes(m, 3);
      INFO("combine " << describe(dt));
      Arg y(p, dt[0], {N, d}, randn(N * d, ++seed)), eo(p, dt[1], {A, d}, randn(A * d, ++seed));
      Arg gate(p, dt[2], {N, kmax}, randn(N * kmax, ++seed));
      p.gpu->combine(y.g, eo.g, gate.g, r.sa.g);
      p.cpu->combine(y.c, eo.c, gate.c, r.sa.c);
      require_same(p, y, "y");
    }
  }
}

TEST_CASE("cuda bf16 storage: combine_backward matches the CPU in every dtype combination", "[cuda]") {
  Pair p(true);
  uint64_t seed = 1200;
  for (const RowCase& c : kRowCases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n " << c.n << " d " << c.d << " p_empty " << c.p_empty);
    const int64_t N = c.N, kmax = c.kmax, d = c.d;
    Route r = make_route(p, N, kmax, c.n, c.p_empty, ++seed);
    const int64_t A = r.A;
    for (unsigned m = 0; m < 32; ++m) {  // dexpert_out, dslot_gate, dy, expert_out, slot_gate
      const std::vector<DType> dt = dtypes(m, 5);
      INFO("combine_backward " << describe(dt));
      Arg deo(p, dt[0], {A, d}, randn(A * d, ++seed)), dgate(p, dt[1], {N, kmax}, randn(N * kmax, ++seed));
      Arg dy(p, dt[2], {N, d}, randn(N * d, ++seed)), eo(p, dt[3], {A, d}, randn(A * d, ++seed));
      Arg gate(p, dt[4], {N, kmax}, randn(N * kmax, ++seed));
      p.gpu->combine_backward(deo.g, dgate.g, dy.g, eo.g, gate.g, r.sa.g);
      p.cpu->combine_backward(deo.c, dgate.c, dy.c, eo.c, gate.c, r.sa.c);
      require_same(p, deo, "dexpert_out");
      require_near(p, dgate, kDotRtol, kDotAtol, "dslot_gate");
    }
  }
}

TEST_CASE("cuda bf16 storage: block_norms and its backward match the CPU in every dtype combination", "[cuda]") {
  Pair p(true);
  struct Case {
    int64_t N;
    int nb;
    int64_t dl, S;
  };
  const Case cases[] = {{12, 4, 8, 5}, {7, 3, 37, 3}, {5, 2, 1, 2}};
  using K = Backend::NormKind;
  uint64_t seed = 1300;
  for (const Case& c : cases) {
    for (K kind : {K::L2, K::L1, K::Linf}) {
      INFO("N " << c.N << " blocks " << c.nb << " dl " << c.dl << " S " << c.S << " kind " << int(kind));
      const int64_t N = c.N, C = c.nb * c.dl;
      std::vector<float> ch = randn(N * C, ++seed);
      std::fill(ch.begin(), ch.begin() + c.dl, 0.f);  // a zero block (L2's backward skips it)
      for (unsigned m = 0; m < 4; ++m) {              // s, c
        const std::vector<DType> dt = dtypes(m, 2);
        INFO("block_norms " << describe(dt));
        Arg s(p, dt[0], {N, c.S}, randn(N * c.S, ++seed)), cc(p, dt[1], {N, C}, ch);
        p.gpu->block_norms(s.g, cc.g, c.nb, kind);
        p.cpu->block_norms(s.c, cc.c, c.nb, kind);
        if (kind == K::Linf) {
          require_same(p, s, "Linf norms");
        } else {
          require_near(p, s, kRtol, kAtol, "norms");
        }
      }
      for (unsigned m = 0; m < 16; ++m) {  // dc, ds, c, s
        const std::vector<DType> dt = dtypes(m, 4);
        INFO("block_norms_backward " << describe(dt));
        Arg cc(p, dt[2], {N, C}, ch), s(p, dt[3], {N, c.S}, std::vector<float>(size_t(N * c.S), 0.f));
        p.cpu->block_norms(s.c, cc.c, c.nb, kind);  // the norms of c as stored, on both sides
        p.gpu->upload(s.g, s.c.data);               // the CPU backend's memory is host memory
        Arg dc(p, dt[0], {N, C}, randn(N * C, ++seed)), ds(p, dt[1], {N, c.S}, randn(N * c.S, ++seed));
        p.gpu->block_norms_backward(dc.g, ds.g, cc.g, s.g, c.nb, kind);
        p.cpu->block_norms_backward(dc.c, ds.c, cc.c, s.c, c.nb, kind);
        require_near(p, dc, kRtol, kAtol, "dc");
      }
    }
  }
}

TEST_CASE("cuda bf16 storage: gather_blocks matches the CPU bit for bit in every dtype combination", "[cuda]") {
  Pair p(true);
  uint64_t seed = 1400;
  for (const RowCase& c : kRowCases) {
    INFO("N " << c.N << " kmax " << c.kmax << " n " << c.n << " dl " << c.d << " p_empty " << c.p_empty);
    const int64_t N = c.N, kmax = c.kmax, dl = c.d;
    Route r = make_route(p, N, kmax, c.n, c.p_empty, ++seed);
    const int64_t A = r.A;
    for (unsigned m = 0; m < 4; ++m) {  // out, c
      const std::vector<DType> dt = dtypes(m, 2);
      INFO("gather_blocks " << describe(dt));
      Arg out(p, dt[0], {A, dl}, randn(A * dl, ++seed)), cc(p, dt[1], {N, c.n * dl}, randn(N * c.n * dl, ++seed));
      p.gpu->gather_blocks(out.g, cc.g, r.as.g.rows(0, A), r.ex.g);
      p.cpu->gather_blocks(out.c, cc.c, r.as.c.rows(0, A), r.ex.c);
      require_same(p, out, "gather_blocks");
    }
  }
}

// The model's dtypes (moe_layer.cpp, act_norm_scorer.cpp): xg_, eo_, the latent c and its blocks
// cg BF16; y, gates, scores and every gradient fp32.
TEST_CASE("cuda bf16 storage: the routing ops run natively on the model's BF16 tensors", "[cuda]") {
  Pair p(true);
  if (!device_counts()) return;  // not the simulator: nothing counted
  const int64_t N = 16, kmax = 2, d = 24, nb = 4, dl = 8;
  Route r = make_route(p, N, kmax, int(nb), 0.1, 1500);
  const int64_t A = r.A;
  REQUIRE(A > 0);
  Backend& be = *p.gpu;
  const Tensor as = r.as.g.rows(0, A);
  // The kernel launches of `op` with the activations in dtype at (F32, or BF16 as in the model).
  const auto launches = [&](const char* op, DType at) {
    Arg x(p, at, {N, d}, randn(N * d, 1)), xg(p, at, {A, d}, randn(A * d, 2)), y(p, F, {N, d}, randn(N * d, 3));
    Arg gate(p, F, {N, kmax}, randn(N * kmax, 4)), dgate(p, F, {N, kmax}, randn(N * kmax, 5));
    Arg deo(p, F, {A, d}, randn(A * d, 6)), c(p, at, {N, nb * dl}, randn(N * nb * dl, 7));
    Arg cg(p, at, {A, dl}, randn(A * dl, 8)), s(p, F, {N, nb}, randn(N * nb, 9));
    Arg dc(p, F, {N, nb * dl}, randn(N * nb * dl, 10));
    const std::string o = op;
    return kernels_of([&] {
      if (o == "gather_rows") be.gather_rows(xg.g, x.g, as, int(kmax));
      if (o == "combine") be.combine(y.g, xg.g, gate.g, r.sa.g);
      if (o == "combine_backward") be.combine_backward(deo.g, dgate.g, y.g, xg.g, gate.g, r.sa.g);
      if (o == "block_norms") be.block_norms(s.g, c.g, int(nb), Backend::NormKind::L2);
      if (o == "block_norms_backward") be.block_norms_backward(dc.g, s.g, c.g, s.g, int(nb), Backend::NormKind::L2);
      if (o == "gather_blocks") be.gather_blocks(cg.g, c.g, as, r.ex.g);
    });
  };
  for (const char* op :
       {"gather_rows", "combine", "combine_backward", "block_norms", "block_norms_backward", "gather_blocks"}) {
    INFO(op);
    const uint64_t f32 = launches(op, F), bf16 = launches(op, B);
    CHECK(f32 >= 1);
    CHECK(bf16 == f32);
  }
}

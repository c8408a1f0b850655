// CPU backend: bit-identical results whatever the thread count, and F32 kernels agreeing with
// F64 ones on random inputs.
#include "test_cpu_util.h"

#include <cmath>
#include <functional>

using namespace am;
using namespace am::test;

namespace {

// Runs an op on backends with 1, 2 and 3 threads (F32, sizes above the parallel threshold) and
// requires the outputs to be bitwise equal. make(be, ar, outputs) builds the inputs from a fixed
// seed, runs the op and appends the tensors to compare.
using Op = std::function<void(Backend&, Arena&, std::vector<Tensor>&)>;

void check_thread_invariance(const char* what, const Op& op) {
  std::vector<std::unique_ptr<CpuBackend>> bes;
  std::vector<std::unique_ptr<Arena>> arenas;
  std::vector<std::vector<Tensor>> outs(3);
  for (int threads = 1; threads <= 3; ++threads) {
    bes.push_back(std::make_unique<CpuBackend>(DType::F32, threads));
    arenas.push_back(std::make_unique<Arena>(*bes.back()));
    op(*bes.back(), *arenas.back(), outs[threads - 1]);
  }
  for (int k = 1; k < 3; ++k) {
    REQUIRE(outs[k].size() == outs[0].size());
    for (size_t i = 0; i < outs[0].size(); ++i) {
      INFO(what << ": output " << i << ", 1 thread vs " << k + 1);
      CHECK(same_bits(outs[0][i], outs[k][i]));
    }
  }
}

}  // namespace

TEST_CASE("cpu determinism: 1, 2 and 3 threads give identical bits", "[cpu]") {
  check_thread_invariance("attention", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(50);
    AttnShape s;
    s.B = 3;
    s.T = 33;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.head_dim = 16;
    Tensor qkv = ar.randn({s.B, s.T, s.qkv_dim()}, rng), R = ar.randn({s.B, s.T, s.q_dim()}, rng);
    Tensor o = ar.f({s.B, s.T, s.q_dim()}), lse = ar.f({s.B, s.n_heads, s.T});
    Tensor dqkv = ar.f({s.B, s.T, s.qkv_dim()});
    be.rope_forward(qkv, s, 10000.0);
    be.attention_forward(o, lse, qkv, s);
    be.attention_backward(dqkv, R, qkv, o, lse, s);
    be.rope_backward(dqkv, s, 10000.0);
    out = {o, lse, dqkv};
  });
  check_thread_invariance("rmsnorm backward", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(51);
    const int64_t N = 1500, d = 48;
    Tensor x = ar.randn({N, d}, rng), w = ar.randn({d}, rng), R = ar.randn({N, d}, rng);
    Tensor y = ar.f({N, d}), rstd = ar.f({N}), dx = ar.randn({N, d}, rng), dw = ar.randn({d}, rng);
    be.rmsnorm_forward(y, rstd, x, w, 1e-5);
    be.rmsnorm_backward(dx, dw, R, x, w, rstd);
    out = {y, rstd, dx, dw};
  });
  check_thread_invariance("embedding backward", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(52);
    const int64_t N = 3000, V = 101, d = 32;
    std::vector<int32_t> tok(N);
    for (auto& t : tok) t = static_cast<int32_t>(rng() % 20);  // few distinct ids: many repeats
    Tensor tokens = ar.i32({N}, tok), dout = ar.randn({N, d}, rng), dtable = ar.randn({V, d}, rng);
    be.embedding_backward(dtable, tokens, dout);
    out = {dtable};
  });
  check_thread_invariance("column_sums, sum_squares", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(53);
    const int64_t N = 20000, n = 7;
    Tensor x = ar.randn({N, n}, rng);
    const std::vector<double> cs = be.column_sums(x);
    Tensor res = ar.make(DType::F64, {n + 1});
    std::copy(cs.begin(), cs.end(), d64(res));
    d64(res)[n] = be.sum_squares(x);
    out = {res};
  });
  check_thread_invariance("matmul, cross-entropy", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(54);
    const int64_t M = 300, K = 64, N = 257;
    Tensor a = ar.randn({M, K}, rng), b = ar.randn({N, K}, rng), c = ar.f({M, N}), dc = ar.f({M, K});
    be.matmul(c, a, false, b, true, 1.0, 0.0);
    std::vector<int32_t> tg(M);
    for (auto& t : tg) t = static_cast<int32_t>(rng() % N);
    Tensor losses = ar.f({M});
    be.cross_entropy_forward_backward(losses, c, ar.i32({M}, tg), 1.0 / M);
    be.matmul(dc, c, false, b, false, 1.0, 0.0);
    out = {losses, c, dc};
  });
}

TEST_CASE("cpu determinism: selection, capacity, block norms and entropy across thread counts", "[cpu]") {
  // Sizes above kParallelGrain for each op, so that 2 and 3 threads really split the work.
  check_thread_invariance("topp", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(55);
    const int64_t N = 2000, n = 16, kmax = 4;
    Tensor z = ar.randn({N, n}, rng, 2.0), probs = ar.f({N, n}), R = ar.randn({N, kmax}, rng);
    be.softmax_rows(probs, z);
    Tensor ex = ar.i32({N, kmax}), gate = ar.f({N, kmax}), dprobs = ar.f({N, n});
    be.topp_select(ex, gate, probs, 0.6, true);
    be.topp_select_backward(dprobs, R, ex, gate, probs, true);
    out = {ex, gate, dprobs};
  });
  check_thread_invariance("expert choice", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(56);
    const int64_t N = 4096, n = 16;
    Tensor z = ar.f({N, n}), probs = ar.f({N, n}), R = ar.randn({N, n}, rng);
    for (int64_t i = 0; i < N * n; ++i) Arena::set(z, i, double(rng() % 7));  // many ties
    be.softmax_rows(probs, z);
    Tensor ex = ar.i32({N, n}), gate = ar.f({N, n}), dprobs = ar.f({N, n});
    be.expert_choice_select(ex, gate, probs, 512, 128);
    be.expert_choice_select_backward(dprobs, R, ex);
    out = {ex, gate, dprobs};
  });
  check_thread_invariance("capacity_route", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(57);
    const int64_t N = 20000, kmax = 2, n_total = 10;
    Tensor scores = ar.f({N, n_total});
    for (int64_t i = 0; i < N * n_total; ++i) Arena::set(scores, i, double(rng() % 5));  // ties
    std::vector<int32_t> se(size_t(N * kmax));
    for (int64_t t = 0; t < N; ++t) {
      se[t * kmax] = int32_t(rng() % n_total);
      se[t * kmax + 1] = int32_t((se[t * kmax] + 1 + rng() % (n_total - 1)) % n_total);
    }
    Tensor routed = ar.i32({N, kmax});
    be.capacity_route(routed, ar.i32({N, kmax}, se), scores, 8, 3000);
    out = {routed};
  });
  check_thread_invariance("block norms", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(58);
    const int64_t N = 512, nb = 8, dl = 16;
    Tensor c = ar.randn({N, nb * dl}, rng), R = ar.randn({N, nb + 1}, rng);
    using K = Backend::NormKind;
    for (const K kind : {K::L2, K::L1, K::Linf}) {
      Tensor s = ar.f({N, nb + 1}), dc = ar.f({N, nb * dl});
      be.block_norms(s, c, int(nb), kind);
      be.block_norms_backward(dc, R, c, s, int(nb), kind);
      out.push_back(s);
      out.push_back(dc);
    }
  });
  check_thread_invariance("gather/scatter blocks", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(59);
    const int64_t N = 2048, kmax = 2, n = 8, dl = 16;
    std::vector<int32_t> se(size_t(N * kmax));
    for (int64_t t = 0; t < N; ++t) {
      se[t * kmax] = int32_t(rng() % n);
      se[t * kmax + 1] = int32_t((se[t * kmax] + 1 + rng() % (n - 1)) % n);
    }
    Tensor slot_expert = ar.i32({N, kmax}, se), slot_assign = ar.i32({N, kmax});
    Tensor assign_slot = ar.i32({N * kmax});
    std::vector<int64_t> off;
    const int64_t A = be.route_build(assign_slot, slot_assign, off, slot_expert, int(n));
    Tensor c = ar.randn({N, n * dl}, rng), blocks = ar.f({A, dl}), dc = ar.randn({N, n * dl}, rng);
    be.gather_blocks(blocks, c, assign_slot, slot_expert);
    be.scatter_blocks_add(dc, blocks, assign_slot, slot_expert);
    out = {blocks, dc};
  });
  check_thread_invariance("entropy", [](Backend& be, Arena& ar, std::vector<Tensor>& out) {
    std::mt19937_64 rng(60);
    const int64_t N = 20000, n = 8;  // 10 chunks of kReduceChunk
    Tensor z = ar.randn({N, n}, rng, 2.0), p = ar.f({N, n}), dp = ar.f({N, n});
    be.softmax_rows(p, z);
    Tensor res = ar.make(DType::F64, {1});
    d64(res)[0] = be.entropy_sum(p);
    be.entropy_backward(dp, p, 0.3);
    out = {res, dp};
  });
}

namespace {

// Inputs drawn once in double, given to an F64 and an F32 backend; the op runs on both and every
// output must agree within rtol of the output's largest magnitude.
struct Twin {
  CpuBackend b64{DType::F64, 2}, b32{DType::F32, 2};
  Arena a64{b64}, a32{b32};
  std::mt19937_64 rng{60};
  std::pair<Tensor, Tensor> randn(std::initializer_list<int64_t> shape, double sd = 1.0) {
    Tensor d = a64.randn(shape, rng, sd);
    return {d, a32.clone(d)};
  }
  std::pair<Tensor, Tensor> zeros(std::initializer_list<int64_t> shape) { return {a64.f(shape), a32.f(shape)}; }
  std::pair<Tensor, Tensor> i32(std::initializer_list<int64_t> shape, const std::vector<int32_t>& v) {
    return {a64.i32(shape, v), a32.i32(shape, v)};
  }
};

void check_close(const char* what, const std::pair<Tensor, Tensor>& t, double rtol = 1e-5) {
  const std::vector<double> d = to_vector(t.first), f = to_vector(t.second);
  REQUIRE(d.size() == f.size());
  double scale = 0, worst = 0;
  int64_t at = 0;
  for (double v : d) scale = std::max(scale, std::fabs(v));
  bool finite = std::isfinite(scale);
  for (size_t i = 0; i < d.size(); ++i) {
    finite = finite && std::isfinite(f[i]) && std::isfinite(d[i]);
    if (std::fabs(d[i] - f[i]) > worst) {
      worst = std::fabs(d[i] - f[i]);
      at = static_cast<int64_t>(i);
    }
  }
  INFO(what << ": worst |f32 - f64| " << worst << " at " << at << ", largest |value| " << scale);
  CHECK(finite);
  CHECK(scale > 0);
  CHECK(worst <= rtol * scale);
}

}  // namespace

TEST_CASE("cpu float and double kernels agree to ~1e-5 relative", "[cpu]") {
  Twin w;
  // matmul
  auto a = w.randn({17, 9}), b = w.randn({9, 13}), c = w.zeros({17, 13});
  w.b64.matmul(c.first, a.first, false, b.first, false, 1, 0);
  w.b32.matmul(c.second, a.second, false, b.second, false, 1, 0);
  check_close("matmul", c);
  // rmsnorm forward and backward
  const int64_t N = 24, d = 32;
  auto x = w.randn({N, d}), g = w.randn({d}), R = w.randn({N, d});
  auto y = w.zeros({N, d}), rs = w.zeros({N}), dx = w.zeros({N, d}), dg = w.zeros({d});
  for (int k = 0; k < 2; ++k) {
    Backend& be = k ? static_cast<Backend&>(w.b32) : w.b64;
    auto pick = [k](const std::pair<Tensor, Tensor>& p) { return k ? p.second : p.first; };
    be.rmsnorm_forward(pick(y), pick(rs), pick(x), pick(g), 1e-5);
    be.rmsnorm_backward(pick(dx), pick(dg), pick(R), pick(x), pick(g), pick(rs));
  }
  check_close("rmsnorm out", y);
  check_close("rmsnorm dx", dx);
  check_close("rmsnorm dw", dg);
  // rope + attention forward and backward
  AttnShape s;
  s.B = 2;
  s.T = 9;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 8;
  auto qkv = w.randn({s.B, s.T, s.qkv_dim()}), dout = w.randn({s.B, s.T, s.q_dim()});
  auto o = w.zeros({s.B, s.T, s.q_dim()}), lse = w.zeros({s.B, s.n_heads, s.T});
  auto dqkv = w.zeros({s.B, s.T, s.qkv_dim()});
  for (int k = 0; k < 2; ++k) {
    Backend& be = k ? static_cast<Backend&>(w.b32) : w.b64;
    auto pick = [k](const std::pair<Tensor, Tensor>& p) { return k ? p.second : p.first; };
    be.rope_forward(pick(qkv), s, 10000.0);
    be.attention_forward(pick(o), pick(lse), pick(qkv), s);
    be.attention_backward(pick(dqkv), pick(dout), pick(qkv), pick(o), pick(lse), s);
    be.rope_backward(pick(dqkv), s, 10000.0);
  }
  check_close("rope qkv", qkv);
  check_close("attention out", o);
  check_close("attention lse", lse);
  check_close("attention dqkv", dqkv);
  // swiglu, cross-entropy, softmax, top-k, routing, adamw
  auto sg = w.randn({N, d}, 2.0), su = w.randn({N, d}), h = w.zeros({N, d});
  auto dsg = w.zeros({N, d}), dsu = w.zeros({N, d});
  auto logits = w.randn({N, 50}, 3.0), losses = w.zeros({N});
  std::vector<int32_t> tg(N);
  for (int64_t i = 0; i < N; ++i) tg[i] = static_cast<int32_t>((i * 7) % 50) - (i == 3 ? 60 : 0);
  auto targets = w.i32({N}, tg);
  auto z = w.randn({N, 8}, 2.0), p = w.zeros({N, 8}), dz = w.zeros({N, 8}), l = w.zeros({N});
  auto gate = w.zeros({N, 2}), dgate = w.randn({N, 2}), dsc = w.zeros({N, 8});
  auto ex = std::make_pair(w.a64.i32({N, 2}), w.a32.i32({N, 2}));
  auto par = w.randn({100}), grad = w.randn({100}), m = w.zeros({100}), v = w.zeros({100});
  AdamWStep st;
  st.lr = 1e-2;
  st.weight_decay = 0.1;
  for (int k = 0; k < 2; ++k) {
    Backend& be = k ? static_cast<Backend&>(w.b32) : w.b64;
    auto pick = [k](const std::pair<Tensor, Tensor>& p) { return k ? p.second : p.first; };
    be.swiglu_forward(pick(h), pick(sg), pick(su));
    be.swiglu_backward(pick(dsg), pick(dsu), pick(R), pick(sg), pick(su));
    be.cross_entropy_forward_backward(pick(losses), pick(logits), pick(targets), 0.5);
    be.softmax_rows(pick(p), pick(z));
    be.softmax_rows_backward(pick(dz), pick(R).reshape({N * 4, 8}).rows(0, N), pick(p));
    be.logsumexp_rows(pick(l), pick(z));
    be.topk_select(pick(ex), pick(gate), pick(z), pick(z), 2, 8);
    be.topk_select_backward(pick(dsc), pick(dgate), pick(ex), pick(gate), 8);
    for (int step = 1; step <= 3; ++step) {
      st.step = step;
      be.adamw_update(pick(par), pick(grad), pick(m), pick(v), st);
    }
  }
  check_close("swiglu h", h);
  check_close("swiglu dg", dsg);
  check_close("swiglu du", dsu);
  check_close("cross-entropy losses", losses);
  check_close("cross-entropy dlogits", logits);
  check_close("softmax", p);
  check_close("softmax backward", dz);
  check_close("logsumexp", l);
  CHECK(std::equal(ex.first.as<int32_t>(), ex.first.as<int32_t>() + 2 * N, ex.second.as<int32_t>()));
  check_close("topk gates", gate);
  check_close("topk dscores", dsc);
  check_close("adamw param", par);
  check_close("adamw m", m);
  check_close("adamw v", v);
}

// The ops of a training step that reads the device once (Backend, "a training step that reads the device once") on CUDA
// against the CPU: batch uploads from pinned memory, the loss and gradient-norm accumulators, and
// the multi-tensor AdamW with its clip factor read from device memory.
#include "core/device_counts.h"
#include "cuda_test_util.h"
#include "model/transformer.h"
#include "train/optimizer.h"
#include "train/step.h"

#ifdef AM_CUDA_SIM
#include "am_sim/sim.h"
#endif

#include <algorithm>
#include <cstring>
#include <limits>

using namespace am;
using namespace am::test;

namespace {

std::vector<double> f64_of(Backend& be, Tensor t) {
  std::vector<double> h(static_cast<size_t>(t.numel()));
  be.download(h.data(), t);
  return h;
}

// A table of rows over tensors of these sizes laid out back to back (tags 1, 2, ...; decay on odd
// tags), each tensor split into rows of at most kAdamWChunkElems elements.
std::vector<AdamWChunk> rows_for(const std::vector<int64_t>& sizes, int64_t state_shift = 0) {
  std::vector<AdamWChunk> rows;
  int64_t at = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    append_adamw_chunks(rows, at, at + state_shift, sizes[i], i % 2 == 0, static_cast<int>(i) + 1);
    at += sizes[i];
  }
  return rows;
}

std::vector<int32_t> words(const std::vector<AdamWChunk>& rows) {
  std::vector<int32_t> w(rows.size() * kAdamWChunkWords);
  if (!rows.empty()) std::memcpy(w.data(), rows.data(), w.size() * sizeof(int32_t));
  return w;
}

float flag_of(Backend& be) {
  Buffer b = be.alloc(sizeof(float));
  Tensor t(b.get(), DType::F32, {1});
  be.copy_update_flag(t);
  float f = 0;
  be.download(&f, t);
  return f;
}

}  // namespace

TEST_CASE("cuda upload_async from pinned memory arrives without a host synchronisation", "[cuda]") {
  Pair p;
  const int64_t n = 1000;
  Buffer host = p.gpu->alloc_host(sizeof(int32_t) * n);
  auto* h = static_cast<int32_t*>(host.get());
  for (int64_t i = 0; i < n; ++i) h[i] = static_cast<int32_t>(3 * i - 7);
  Buffer dev = p.gpu->alloc(sizeof(int32_t) * n);
  const Tensor t(dev.get(), DType::I32, {n});
  reset_device_counts();
  p.gpu->upload_async(t, h);
  if (const auto c = device_counts()) {
    CHECK(c->host_syncs() == 0);
    CHECK(c->memcpy_h2d == 1);
  }
  std::vector<int32_t> back(static_cast<size_t>(n));
  p.gpu->download(back.data(), t);  // synchronises: only now may the host reuse h
  CHECK(std::equal(back.begin(), back.end(), h));
  // The CPU backend: a plain copy.
  Buffer cbuf = p.cpu->alloc_host(sizeof(int32_t) * n), cdev = p.cpu->alloc(sizeof(int32_t) * n);
  std::memcpy(cbuf.get(), h, sizeof(int32_t) * n);
  p.cpu->upload_async(Tensor(cdev.get(), DType::I32, {n}), cbuf.get());
  CHECK(std::memcmp(cdev.get(), h, sizeof(int32_t) * n) == 0);
}

TEST_CASE("cuda loss and sum-of-squares accumulators match the CPU, with no read-back", "[cuda]") {
  Pair p;
  for (const int64_t n : {int64_t{1}, int64_t{255}, int64_t{4097}, int64_t{100003}}) {
    INFO("n " << n);
    Twin losses(p, {n}, randn(static_cast<size_t>(n), 30 + n));
    Twin acc(p, {1}, std::vector<double>{0.25});
    reset_device_counts();
    p.gpu->loss_sum_accumulate(acc.g, losses.g, 37.0, 3.0);
    p.gpu->loss_sum_accumulate(acc.g, losses.g, 37.0, 3.0);
    p.gpu->sum_squares_accumulate(acc.g, losses.g);
    if (const auto c = device_counts()) CHECK(c->host_syncs() == 0);
    p.cpu->loss_sum_accumulate(acc.c, losses.c, 37.0, 3.0);
    p.cpu->loss_sum_accumulate(acc.c, losses.c, 37.0, 3.0);
    p.cpu->sum_squares_accumulate(acc.c, losses.c);
    const double g = f64_of(*p.gpu, acc.g)[0], c = f64_of(*p.cpu, acc.c)[0];
    CHECK(g == Approx(c).epsilon(1e-12));
    // The CPU op is the host formula it replaces: (sum / denom) / divisor, the sum in index order.
    const std::vector<float> h = losses.from_cpu(p);
    double sum = 0;
    for (float x : h) sum += double(x);
    double want = 0.25;
    want += sum / 37.0 / 3.0;
    want += sum / 37.0 / 3.0;
    want += p.cpu->sum_squares(losses.c);
    CHECK(c == want);
    // The CUDA sum of squares has sum_squares's bits (the same partials, in the same order).
    Twin acc2(p, {1}, std::vector<double>{0.0});
    p.gpu->sum_squares_accumulate(acc2.g, losses.g);
    CHECK(f64_of(*p.gpu, acc2.g)[0] == p.gpu->sum_squares(losses.g));
  }
}

TEST_CASE("cuda sum of squares over spans (the gradient norm's buckets) matches per-span sums", "[cuda]") {
  Pair p;
  const int64_t n = 70001;
  Twin x(p, {n}, randn(n, 60));
  // Spans into two slots, in an order that alternates them, one empty, one of a single element.
  const std::vector<SumSquaresSpan> spans = {{0, 100, 0, 0},   {100, 40000, 1, 0},   {40100, 0, 0, 0},
                                             {40100, 1, 0, 0}, {40101, 29900, 1, 0}, {0, 70001, 0, 0}};
  std::vector<int32_t> w(spans.size() * kSumSquaresSpanWords);
  std::memcpy(w.data(), spans.data(), w.size() * sizeof(int32_t));
  Twin table(p, {static_cast<int64_t>(spans.size()), kSumSquaresSpanWords}, w);
  Twin acc(p, {2}, std::vector<double>{0.5, 0.0}), warm(p, {2}, std::vector<double>{0.0, 0.0});
  p.gpu->sum_squares_spans(warm.g, x.g, table.g);  // the caching allocator meets the scratch size once
  reset_device_counts();
  p.gpu->sum_squares_spans(acc.g, x.g, table.g);
  if (const auto c = device_counts()) {
    CHECK(c->host_syncs() == 0);
    CHECK(c->launches == 2);
  }
  p.cpu->sum_squares_spans(acc.c, x.c, table.c);
  // The reference on each backend: one sum_squares per span, summed on the host in row order.
  for (Backend* be : {p.gpu.get(), p.cpu.get()}) {
    const Tensor xs = be == p.gpu.get() ? x.g : x.c;
    double want[2] = {0.5, 0.0};
    for (const SumSquaresSpan& sp : spans) {
      want[sp.slot] += be->sum_squares(Tensor(xs.as<float>() + sp.begin, DType::F32, {sp.numel}));
    }
    const std::vector<double> got = f64_of(*be, be == p.gpu.get() ? acc.g : acc.c);
    CHECK(got[0] == want[0]);
    CHECK(got[1] == want[1]);
  }
  const std::vector<double> g = f64_of(*p.gpu, acc.g), c = f64_of(*p.cpu, acc.c);
  CHECK(g[0] == Approx(c[0]).epsilon(1e-12));
  CHECK(g[1] == Approx(c[1]).epsilon(1e-12));
}

TEST_CASE("cuda multi-tensor AdamW matches per-tensor updates and the CPU, clip factor from the device", "[cuda]") {
  Pair p;
  // Tensor sizes: a row split (> kAdamWChunkElems), tiny ones, one of a single element.
  const std::vector<int64_t> sizes = {kAdamWChunkElems * 2 + 5, 7, 1, 3000, 64};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  const int64_t shift = 11;  // the moments live at another offset (as ZeRO-1's shard buffer does)
  const std::vector<AdamWChunk> rows = rows_for(sizes, shift);
  Twin chunks(p, {static_cast<int64_t>(rows.size()), kAdamWChunkWords}, words(rows));
  const std::vector<float> p0 = randn(total, 40), g0 = randn(total, 41, 3.f);
  std::vector<float> zeros(static_cast<size_t>(total + shift), 0.f);
  Twin param(p, {total}, p0), grad(p, {total}, g0), m(p, {total + shift}, zeros), v(p, {total + shift}, zeros);
  Twin ref_p(p, {total}, p0), ref_m(p, {total + shift}, zeros), ref_v(p, {total + shift}, zeros);
  AdamWStep s;
  s.lr = 1e-2;
  s.weight_decay = 0.1;
  const double clip = 1.0;
  for (Backend* be : {p.gpu.get(), p.cpu.get()}) be->clear_update_flag();
  for (int step = 1; step <= 3; ++step) {
    s.step = step;
    // norm_sq = (a, b) with a + b the squared norm of the gradients: the clip factor is < 1.
    const double sq = p.cpu->sum_squares(grad.c);
    Twin norm_sq(p, {2}, std::vector<double>{0.75 * sq, 0.25 * sq});
    reset_device_counts();
    p.gpu->adamw_update_multi(param.g, grad.g, m.g, v.g, chunks.g, norm_sq.g, clip, s);
    if (const auto c = device_counts()) {
      CHECK(c->host_syncs() == 0);
      CHECK(c->launches == 2);  // the update and the flag's merge, whatever the number of tensors
    }
    p.cpu->adamw_update_multi(param.c, grad.c, m.c, v.c, chunks.c, norm_sq.c, clip, s);
    // The reference: one adamw_update per tensor with the host clip factor, on both backends.
    AdamWStep t = s;
    const double norm = std::sqrt(0.75 * sq + 0.25 * sq);
    t.grad_scale = std::min(1.0, clip / (norm + 1e-6));
    REQUIRE(t.grad_scale < 1.0);
    int64_t at = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      t.weight_decay = i % 2 == 0 ? s.weight_decay : 0.0;
      t.tag = static_cast<int>(i) + 1;
      auto piece = [&](const Tensor& x, int64_t off) {
        return Tensor(static_cast<float*>(x.data) + off, DType::F32, {sizes[i]});
      };
      p.gpu->adamw_update(piece(ref_p.g, at), piece(grad.g, at), piece(ref_m.g, at + shift), piece(ref_v.g, at + shift),
                          t);
      p.cpu->adamw_update(piece(ref_p.c, at), piece(grad.c, at), piece(ref_m.c, at + shift), piece(ref_v.c, at + shift),
                          t);
      at += sizes[i];
    }
  }
  // Bit-identical to the per-tensor updates on each backend; CUDA vs CPU within AdamW's tolerance.
  CHECK(param.from_gpu(p) == ref_p.from_gpu(p));
  CHECK(m.from_gpu(p) == ref_m.from_gpu(p));
  CHECK(v.from_gpu(p) == ref_v.from_gpu(p));
  CHECK(param.from_cpu(p) == ref_p.from_cpu(p));
  CHECK(v.from_cpu(p) == ref_v.from_cpu(p));
  CHECK(m.from_gpu(p)[0] == 0.f);  // elements outside every row (before the shift) are untouched
  require_close(param.from_gpu(p), param.from_cpu(p), 1e-5, 1e-6);
  require_close(v.from_gpu(p), v.from_cpu(p), 1e-5, 1e-7);
  CHECK(flag_of(*p.gpu) == 0.f);
  CHECK(flag_of(*p.cpu) == 0.f);
}

TEST_CASE("cuda multi-tensor AdamW flag names the smallest tag that went non-finite, and no clip without grad_clip",
          "[cuda]") {
  Pair p;
  const std::vector<int64_t> sizes = {5000, 300, 40000, 9};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  const std::vector<AdamWChunk> rows = rows_for(sizes);
  Twin chunks(p, {static_cast<int64_t>(rows.size()), kAdamWChunkWords}, words(rows));
  std::vector<float> p0 = randn(total, 50);
  p0[5000 + 300 + 39999] = 1e9f;      // tensor 3 (tag 3, decayed): the last element of a late row overflows
  p0[5000 + 300 + 40000 + 2] = 1e9f;  // tensor 4 (tag 4, no decay): stays finite
  p0[2] = 1e9f;                       // tensor 1 (tag 1, decayed) overflows too, but later in the list below
  std::vector<float> zeros(static_cast<size_t>(total), 0.f);
  Twin grad(p, {total}, randn(total, 51)), norm_sq(p, {2}, std::vector<double>{1e30, 0.0});
  for (const bool with_first : {false, true}) {
    INFO("tensor 1 overflows too: " << with_first);
    std::vector<float> start = p0;
    if (!with_first) start[2] = 0.5f;
    Twin param(p, {total}, start), m(p, {total}, zeros), v(p, {total}, zeros);
    AdamWStep s;
    s.lr = 1e30;
    s.weight_decay = 1e3;
    for (Backend* be : {p.gpu.get(), p.cpu.get()}) be->clear_update_flag();
    // grad_clip 0: no clipping, whatever the norm (1e15 here).
    p.gpu->adamw_update_multi(param.g, grad.g, m.g, v.g, chunks.g, norm_sq.g, 0.0, s);
    p.cpu->adamw_update_multi(param.c, grad.c, m.c, v.c, chunks.c, norm_sq.c, 0.0, s);
    const float want = with_first ? 1.f : 3.f;
    CHECK(flag_of(*p.gpu) == want);
    CHECK(flag_of(*p.cpu) == want);
    // A later call keeps the flag (sticky until cleared), even with a smaller tag.
    p.gpu->adamw_update_multi(param.g, grad.g, m.g, v.g, chunks.g, norm_sq.g, 0.0, s);
    p.cpu->adamw_update_multi(param.c, grad.c, m.c, v.c, chunks.c, norm_sq.c, 0.0, s);
    CHECK(flag_of(*p.gpu) == want);
    CHECK(flag_of(*p.cpu) == want);
  }
  // No clipping: the first step moves each parameter by about lr (the update of Adam's first step).
  const std::vector<AdamWChunk> one = rows_for({1000});
  Twin c1(p, {1, kAdamWChunkWords}, words(one));
  Twin q(p, {1000}, std::vector<float>(1000, 1.f)), gq(p, {1000}, randn(1000, 52, 1e3f));
  Twin mq(p, {1000}, std::vector<float>(1000, 0.f)), vq(p, {1000}, std::vector<float>(1000, 0.f));
  AdamWStep s;
  s.lr = 1e-3;
  s.weight_decay = 0.0;
  p.gpu->adamw_update_multi(q.g, gq.g, mq.g, vq.g, c1.g, norm_sq.g, 0.0, s);
  p.cpu->adamw_update_multi(q.c, gq.c, mq.c, vq.c, c1.c, norm_sq.c, 0.0, s);
  require_close(q.from_gpu(p), q.from_cpu(p), 1e-5, 1e-6);
  require_close(mq.from_gpu(p), mq.from_cpu(p), 1e-5, 1e-6);
  CHECK(std::abs(mq.from_cpu(p)[0]) > 1.f);  // m = 0.1 * g, g ~ 1e3: not clipped by the 1e15 norm
}

// The whole step on a dense model (no MoE layer, so no read-back of its own): ONE host
// synchronisation per step whatever the accumulation, the uploads of every micro-batch from their
// own pinned slots (with lazy streams they run only at the step's read-back, so a slot refilled
// too early would be reported by the simulator), and the CPU's losses and norm.
TEST_CASE("cuda train_step of a dense model: one host synchronisation per step, over 3 micro-batches", "[cuda]") {
  Pair p;
  ModelConfig m;
  m.vocab_size = 40;
  m.d_model = 16;
  m.n_layers = 2;
  m.n_heads = 2;
  m.n_kv_heads = 1;
  m.max_seq_len = 8;
  m.init_std = 0.1;
  m.moe.n_experts = 1;
  m.moe.scorer.type = "none";
  m.moe.selector.k = 1;
  m.moe.d_ffn = 24;
  m.moe.aux.load_balance = 0;
  m.moe.aux.z_loss = 0;
  TrainConfig tc;
  tc.lr = 1e-2;
  tc.grad_clip = 0.1;  // clips: the factor comes from the device
  tc.warmup_steps = 0;
  tc.max_steps = 10;
#ifdef AM_CUDA_SIM
  const am::sim::Settings saved = am::sim::settings();
  am::sim::settings().lazy_streams = true;
#endif
  Transformer gm(*p.gpu, m, 2, 8), cm(*p.cpu, m, 2, 8);
  gm.store().init(5);
  cm.store().init(5);
  AdamW go(gm.store(), tc), co(cm.store(), tc);
  for (int64_t step = 0; step < 2; ++step) {
    int calls = 0;
    auto batch = [&](int32_t* in, int32_t* tg) {  // another batch per micro-batch
      for (int i = 0; i < 16; ++i) {
        in[i] = (7 * i + 3 * calls + static_cast<int>(step)) % 40;
        tg[i] = (5 * i + calls) % 40;
      }
      ++calls;
    };
    reset_device_counts();
    const StepResult rg = train_step(gm, go, tc, step, 3, batch);
    if (const auto c = device_counts()) {
      // The first step also meets the caching allocator's sizes (cudaMalloc) once.
      CHECK(c->host_syncs() - (step == 0 ? c->sync_malloc : 0) == 1);
      CHECK(c->sync_memcpy == 1);
      CHECK(c->memcpy_d2h == 1);
      CHECK(c->memcpy_h2d == 6);         // tokens and targets of 3 micro-batches, none synchronous
      CHECK(c->legacy_stream_ops == 0);  // all on the compute stream
    }
    calls = 0;
    const StepResult rc = train_step(cm, co, tc, step, 3, batch);
    CHECK(rg.ce == Approx(rc.ce).epsilon(1e-5));
    CHECK(rg.grad_norm == Approx(rc.grad_norm).epsilon(1e-4));
    CHECK(rc.grad_norm > tc.grad_clip);
  }
  // The parameters after two clipped updates agree (AdamW's parity tolerance, loosened by the steps).
  const std::vector<double> pg = download_as_double(*p.gpu, gm.store().all_values()),
                            pc = download_as_double(*p.cpu, cm.store().all_values());
  REQUIRE(pg.size() == pc.size());
  for (size_t i = 0; i < pg.size(); ++i) REQUIRE(std::abs(pg[i] - pc[i]) <= 1e-4 + 1e-3 * std::abs(pc[i]));
#ifdef AM_CUDA_SIM
  am::sim::settings() = saved;
#endif
}

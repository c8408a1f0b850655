// The AdamW update flag (Backend::adamw_update, copy_update_flag) on CUDA against the CPU: 0 while
// every value written is finite; the tag of the first call that wrote a non-finite one, even when
// a single element of a late block overflowed; copied beside other values (as Transformer::forward
// copies it beside the losses) and read in the same download.
#include "cuda_test_util.h"

using namespace am;
using namespace am::test;

namespace {

// The flag of backend `be` copied into element 3 of `t` (4 floats), read with the whole of t.
float flag_via(Backend& be, Tensor t) {
  be.copy_update_flag(Tensor(t.as<float>() + 3, DType::F32, {1}));
  std::vector<float> h(4);
  be.download(h.data(), t);
  CHECK(h[0] == 1.f);  // the values beside the flag are untouched
  return h[3];
}

AdamWStep step(double lr, double wd, int tag) {
  AdamWStep s;
  s.lr = lr;
  s.weight_decay = wd;
  s.tag = tag;
  return s;
}

}  // namespace

TEST_CASE("cuda AdamW update flag matches the CPU", "[cuda]") {
  Pair p;
  const int64_t n = 100003;
  std::vector<float> values = randn(n, 21);
  values.back() = 1e9f;  // lr 1e30 * wd 1e3 * 1e9 overflows fp32 here only
  Twin param(p, {n}, values), grad(p, {n}, randn(n, 22));
  std::vector<float> zeros(static_cast<size_t>(n), 0.f);
  Twin m(p, {n}, zeros), v(p, {n}, zeros), other(p, {n}, randn(n, 23)), losses(p, {4}, std::vector<float>(4, 1.f));
  for (Backend* be : {p.gpu.get(), p.cpu.get()}) be->clear_update_flag();

  p.gpu->adamw_update(param.g, grad.g, m.g, v.g, step(1e-3, 0.1, 5));
  p.cpu->adamw_update(param.c, grad.c, m.c, v.c, step(1e-3, 0.1, 5));
  CHECK(flag_via(*p.gpu, losses.g) == 0.f);
  CHECK(flag_via(*p.cpu, losses.c) == 0.f);

  p.gpu->adamw_update(param.g, grad.g, m.g, v.g, step(1e30, 1e3, 7));
  p.cpu->adamw_update(param.c, grad.c, m.c, v.c, step(1e30, 1e3, 7));
  const std::vector<float> pg = param.from_gpu(p), pc = param.from_cpu(p);
  CHECK(std::isinf(pg.back()));
  CHECK(std::isinf(pc.back()));
  CHECK(std::isfinite(pg[0]));
  CHECK(flag_via(*p.gpu, losses.g) == 7.f);
  CHECK(flag_via(*p.cpu, losses.c) == 7.f);

  // a later overflowing call keeps the first tag; clearing resets it
  p.gpu->adamw_update(other.g, grad.g, m.g, v.g, step(1e30, 1e10, 9));
  p.cpu->adamw_update(other.c, grad.c, m.c, v.c, step(1e30, 1e10, 9));
  CHECK(flag_via(*p.gpu, losses.g) == 7.f);
  CHECK(flag_via(*p.cpu, losses.c) == 7.f);
  for (Backend* be : {p.gpu.get(), p.cpu.get()}) be->clear_update_flag();
  CHECK(flag_via(*p.gpu, losses.g) == 0.f);
  CHECK(flag_via(*p.cpu, losses.c) == 0.f);
}

// Shared helpers of the CUDA parity tests: the same random host data on both backends, and a
// closeness check that names the first entry that differs.
#pragma once

#include "core/bf16.h"
#include "cpu/cpu_backend.h"
#include "cuda_backend.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

namespace am::test {

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// n ids drawn uniformly from [lo, hi).
inline std::vector<int32_t> random_ids(size_t n, int32_t lo, int32_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(lo, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// The two backends under comparison: CUDA fp32 and the CPU reference fp32 (one thread); with
// bf16_matmul, both take bf16 matrix-product operands (the CPU emulating them exactly).
struct Pair {
  explicit Pair(bool bf16_matmul = false)
      : gpu(make_cuda_backend(DType::F32, 0, bf16_matmul)), cpu(make_cpu_backend(DType::F32, 1, bf16_matmul)) {}
  std::unique_ptr<Backend> gpu;
  std::unique_ptr<Backend> cpu;
};

// Float values into and out of an F32 or BF16 tensor of a backend: BF16 rounds them to nearest
// even on the way in (am::f32_to_bf16_bits) and widens them exactly on the way out.
inline void upload_floats(Backend& be, const Tensor& t, const std::vector<float>& host) {
  AM_CHECK(static_cast<int64_t>(host.size()) == t.numel(), "{} values for {}", host.size(), t.shape_str());
  if (t.dtype == DType::BF16) {
    std::vector<uint16_t> bits(host.size());
    for (size_t i = 0; i < host.size(); ++i) bits[i] = f32_to_bf16_bits(host[i]);
    be.upload(t, bits.data());
  } else {
    be.upload(t, host.data());
  }
}
inline std::vector<float> download_floats(Backend& be, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::BF16) {
    std::vector<uint16_t> bits(out.size());
    be.download(bits.data(), t);
    for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_bits_to_f32(bits[i]);
  } else {
    be.download(out.data(), t);
  }
  return out;
}

// A float tensor on each backend, F32 or BF16, holding the same values: `host` (rounded to bf16
// for BF16). gpu() and cpu() read them back as floats.
struct FloatTwin {
  Buffer gbuf, cbuf;
  Tensor g, c;
  FloatTwin(Pair& p, DType dt, const std::vector<int64_t>& shape, const std::vector<float>& host) {
    const Tensor probe(nullptr, dt, shape);
    gbuf = p.gpu->alloc(probe.nbytes() + 1);
    cbuf = p.cpu->alloc(probe.nbytes() + 1);
    g = Tensor(gbuf.get(), dt, shape);
    c = Tensor(cbuf.get(), dt, shape);
    upload_floats(*p.gpu, g, host);
    upload_floats(*p.cpu, c, host);
  }
  std::vector<float> gpu(Pair& p) const { return download_floats(*p.gpu, g); }
  std::vector<float> cpu(Pair& p) const { return download_floats(*p.cpu, c); }
};

// A tensor on each backend holding the same host values (F32 or I32).
struct Twin {
  Buffer gbuf, cbuf;
  Tensor g, c;
  template <typename T>
  Twin(Pair& p, const std::vector<int64_t>& shape, const std::vector<T>& host) {
    const DType dt = dtype_of<T>();
    Tensor probe(nullptr, dt, shape);
    AM_CHECK(static_cast<int64_t>(host.size()) == probe.numel(), "twin of {} values for {}", host.size(),
             probe.shape_str());
    gbuf = p.gpu->alloc(probe.nbytes());
    cbuf = p.cpu->alloc(probe.nbytes());
    g = Tensor(gbuf.get(), dt, shape);
    c = Tensor(cbuf.get(), dt, shape);
    p.gpu->upload(g, host.data());
    p.cpu->upload(c, host.data());
  }
  template <typename T = float>
  std::vector<T> from_gpu(Pair& p) const {
    std::vector<T> h(static_cast<size_t>(g.numel()));
    p.gpu->download(h.data(), g);
    return h;
  }
  template <typename T = float>
  std::vector<T> from_cpu(Pair& p) const {
    std::vector<T> h(static_cast<size_t>(c.numel()));
    p.cpu->download(h.data(), c);
    return h;
  }
};

// |cuda - cpu| <= atol + rtol |cpu| for every entry (the first failing entry is reported).
inline void require_close(const std::vector<float>& a, const std::vector<float>& b, double rtol, double atol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("entry " << i << ": cuda " << a[i] << " cpu " << b[i]);
    REQUIRE(std::abs(double(a[i]) - b[i]) <= atol + rtol * std::abs(double(b[i])));
  }
}

// The CUDA and CPU versions of a twin agree.
inline void require_twin_close(Pair& p, const Twin& t, double rtol, double atol) {
  require_close(t.from_gpu(p), t.from_cpu(p), rtol, atol);
}

}  // namespace am::test

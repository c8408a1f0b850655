// Helpers shared by the tests of the CPU backend (tests/test_cpu_*.cpp): tensors owned by a test,
// seeded random fills, and the scalar loss L = sum(R ⊙ output) of the gradient checks.
#pragma once

#include "core/backend.h"
#include "cpu/cpu_backend.h"
#include "support/gradcheck.h"

#include <cstring>
#include <random>
#include <vector>

namespace am::test {

// Owns the buffers of one test. CPU tensors are host memory: tests read and write them directly.
class Arena {
 public:
  explicit Arena(Backend& be) : be_(be) {}
  Tensor make(DType t, std::initializer_list<int64_t> shape) {
    Tensor probe(nullptr, t, shape);
    bufs_.push_back(be_.alloc(probe.nbytes()));
    Tensor v = bufs_.back().view(t, shape);
    if (v.nbytes()) std::memset(v.data, 0, v.nbytes());
    return v;
  }
  Tensor f(std::initializer_list<int64_t> shape) { return make(be_.dtype(), shape); }
  Tensor i32(std::initializer_list<int64_t> shape) { return make(DType::I32, shape); }
  // A float tensor of ~N(0, sd^2) values.
  Tensor randn(std::initializer_list<int64_t> shape, std::mt19937_64& rng, double sd = 1.0) {
    Tensor t = f(shape);
    std::normal_distribution<double> nd(0.0, sd);
    for (int64_t i = 0; i < t.numel(); ++i) set(t, i, nd(rng));
    return t;
  }
  Tensor i32(std::initializer_list<int64_t> shape, const std::vector<int32_t>& values) {
    Tensor t = i32(shape);
    REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
    std::copy(values.begin(), values.end(), t.as<int32_t>());
    return t;
  }
  // Same shape and values as src, in this arena's backend dtype.
  Tensor clone(const Tensor& src) {
    Tensor t = make(src.dtype == DType::I32 ? DType::I32 : be_.dtype(), {src.numel()});
    t.ndim = src.ndim;
    t.dims = src.dims;
    if (src.dtype == DType::I32) {
      std::memcpy(t.data, src.data, src.nbytes());
    } else {
      for (int64_t i = 0; i < src.numel(); ++i) set(t, i, get(src, i));
    }
    return t;
  }

  static double get(const Tensor& t, int64_t i) { return t.dtype == DType::F64 ? t.as<double>()[i] : t.as<float>()[i]; }
  static void set(const Tensor& t, int64_t i, double v) {
    if (t.dtype == DType::F64) {
      t.as<double>()[i] = v;
    } else {
      t.as<float>()[i] = static_cast<float>(v);
    }
  }

 private:
  Backend& be_;
  std::vector<Buffer> bufs_;
};

inline double* d64(const Tensor& t) { return t.as<double>(); }
inline int32_t* i32p(const Tensor& t) { return t.as<int32_t>(); }

// sum_i r[i] * x[i] over F64 tensors of equal numel.
inline double weighted_sum(const Tensor& r, const Tensor& x) {
  REQUIRE(r.numel() == x.numel());
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += d64(r)[i] * d64(x)[i];
  return s;
}

inline std::vector<double> to_vector(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = Arena::get(t, i);
  return v;
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

}  // namespace am::test

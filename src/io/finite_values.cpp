#include "io/finite_values.h"

#include "core/bf16.h"
#include "core/error.h"

#include <cmath>
#include <cstring>

namespace am {
namespace {

// Value i of host data of dtype dt, as a double.
double value_at(const void* host, DType dt, int64_t i) {
  const char* p = static_cast<const char*>(host) + static_cast<size_t>(i) * dtype_size(dt);
  if (dt == DType::F64) {
    double d;
    std::memcpy(&d, p, sizeof d);
    return d;
  }
  if (dt == DType::BF16) {
    uint16_t b;
    std::memcpy(&b, p, sizeof b);
    return bf16_bits_to_f32(b);
  }
  float f;
  std::memcpy(&f, p, sizeof f);
  return f;
}

template <typename T>
int64_t first_nonfinite_of(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

}  // namespace

int64_t first_nonfinite(const void* host, DType dt, int64_t n) {
  switch (dt) {
    case DType::F32:
      return first_nonfinite_of(static_cast<const float*>(host), n);
    case DType::F64:
      return first_nonfinite_of(static_cast<const double*>(host), n);
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(value_at(host, dt, i))) return i;
      }
      return -1;
    case DType::I32:
      break;
  }
  AM_CHECK(false, "first_nonfinite of {}", dtype_name(dt));
  return -1;
}

void refuse_nonfinite(const std::vector<StEntry>& tensors, const std::string& context, const std::string& hint) {
  for (const StEntry& e : tensors) {
    int64_t n = 1;
    for (int64_t s : e.shape) n *= s;
    const int64_t at = first_nonfinite(e.data, e.dtype, n);
    if (at < 0) continue;
    throw UserError(fmt::format("{}: tensor {} holds a non-finite value ({} at element {})", context, e.name,
                                value_at(e.data, e.dtype, at), at),
                    hint);
  }
}

}  // namespace am

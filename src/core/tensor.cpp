#include "core/tensor.h"

#include <fmt/format.h>

namespace am {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::BF16:
      return 2;
    case DType::I32:
      return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType t : {DType::F32, DType::F64, DType::BF16, DType::I32}) {
    if (name == dtype_name(t)) return t;
  }
  throw UserError(fmt::format("unknown dtype '{}'", name), "valid dtypes: F32, F64, BF16, I32");
}

Tensor::Tensor(void* d, DType t, std::initializer_list<int64_t> shape) : Tensor(d, t, std::vector<int64_t>(shape)) {}

Tensor::Tensor(void* d, DType t, const std::vector<int64_t>& shape) : data(d), dtype(t) {
  AM_CHECK(shape.size() >= 1 && shape.size() <= kMaxDims, "bad rank {}", shape.size());
  for (int64_t s : shape) {
    AM_CHECK(s >= 0, "negative dimension {}", s);
    dims[ndim++] = s;
  }
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= dims[i];
  return ndim == 0 ? 0 : n;
}

int64_t Tensor::dim(int i) const {
  int j = i < 0 ? ndim + i : i;
  AM_CHECK(j >= 0 && j < ndim, "dim {} of a rank-{} tensor", i, ndim);
  return dims[j];
}

std::string Tensor::shape_str() const {
  std::string s = "(";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

Tensor Tensor::reshape(std::initializer_list<int64_t> shape) const {
  Tensor t(data, dtype, shape);
  AM_CHECK(t.numel() == numel(), "reshape {} -> {} changes numel", shape_str(), t.shape_str());
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
  AM_CHECK(ndim >= 1 && begin >= 0 && count >= 0 && begin + count <= dims[0], "rows [{}, {}) of {}", begin,
           begin + count, shape_str());
  Tensor t = *this;
  t.dims[0] = count;
  int64_t row = 1;
  for (int i = 1; i < ndim; ++i) row *= dims[i];
  t.data = static_cast<char*>(data) + static_cast<size_t>(begin * row) * dtype_size(dtype);
  return t;
}

Tensor Buffer::view(DType t, std::initializer_list<int64_t> shape) const {
  Tensor v(ptr_, t, shape);
  AM_CHECK(v.nbytes() <= bytes_, "view {} of {} needs {} bytes, buffer has {}", v.shape_str(), dtype_name(t),
           v.nbytes(), bytes_);
  return v;
}

}  // namespace am

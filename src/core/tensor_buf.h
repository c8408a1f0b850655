// TensorBuf: a Buffer together with the Tensor view of it, for activations and scratch space.
// Converts to Tensor, so it can be passed straight to Backend ops.
#pragma once

#include "core/backend.h"

#include <vector>

namespace am {

class TensorBuf {
 public:
  TensorBuf() = default;
  TensorBuf(Backend& be, DType dtype, const std::vector<int64_t>& shape) {
    Tensor probe(nullptr, dtype, shape);
    buf_ = be.alloc(probe.nbytes() > 0 ? probe.nbytes() : 1);
    t_ = Tensor(buf_.get(), dtype, shape);
  }
  operator Tensor() const { return t_; }  // NOLINT: implicit by design
  const Tensor& t() const { return t_; }
  bool empty() const { return buf_.get() == nullptr; }

 private:
  Buffer buf_;
  Tensor t_;
};

}  // namespace am

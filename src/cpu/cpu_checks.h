// What the CPU backend's `_impl`s need from the op contract: the matrix view of a tensor
// (last_dim, row_count: core/op_checks.h, where Backend checks every op's arguments) and the
// dispatch on the compute dtype.
#pragma once

#include "core/op_checks.h"
#include "core/tensor.h"

namespace am::cpu {

using am::last_dim;
using am::row_count;

// Calls f(float{}) or f(double{}) for the compute dtype.
template <typename F>
void dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::F32:
      f(float{});
      return;
    case DType::F64:
      f(double{});
      return;
    default:
      AM_CHECK(false, "the CPU backend computes in F32 or F64, not {}", dtype_name(dt));
  }
}

}  // namespace am::cpu

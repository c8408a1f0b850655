// Private helpers of routing.cu for bf16 storage (core/backend.h, "bf16 storage"): the kernels
// are templated on the storage type of their float arguments (float or __nv_bfloat16), compute in
// fp32 / double on the widened values, and round once when they store a BF16 element. Here: the
// widening and rounding on the device and the host dispatch from a tensor's dtype to its storage
// type (the fp32 fallback for an argument an op has no bf16 kernel for: core/f32_copies.h).
#pragma once

#include "bf16_io.cuh"
#include "core/backend.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace am::cuda::moe {

using bf16 = __nv_bfloat16;

// to_float (a stored element as fp32, exact) and from_float<T> (an fp32 value as a stored element,
// bf16 rounding to nearest even): cuda/bf16_io.cuh.

// An element copied from storage TI to storage TO: bit for bit when the types agree (a NaN keeps
// its payload, as the CPU's widen-then-round does), else widened or rounded once.
template <typename TO, typename TI>
__device__ __forceinline__ TO convert_element(TI v) {
  if constexpr (std::is_same_v<TO, TI>) {
    return v;
  } else {
    return from_float<TO>(to_float(v));
  }
}

// ---- host: from dtypes to storage types ----

template <typename T>
struct Storage {
  using type = T;
};

// f(Storage<float>{}) or f(Storage<bf16>{}) by t's dtype (F32 or BF16: Backend has checked it).
template <typename F>
void by_storage(const Tensor& t, F&& f) {
  if (t.dtype == DType::BF16) {
    f(Storage<bf16>{});
  } else {
    f(Storage<float>{});
  }
}

// f(Storage<A>{}, Storage<B>{}) by the dtypes of a and b.
template <typename F>
void by_storage(const Tensor& a, const Tensor& b, F&& f) {
  by_storage(a, [&](auto sa) { by_storage(b, [&](auto sb) { f(sa, sb); }); });
}

}  // namespace am::cuda::moe

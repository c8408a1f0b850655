// bf16 storage in the kernels of dense.cu and rows.cu (core/backend.h, "bf16 storage"): a kernel
// templated on the storage type T (float or __nv_bfloat16) loads with to_float (exact) and
// computes in fp32 (or double) as its fp32 version does; it stores with from_float, which rounds
// the fp32 value to bf16 (nearest even) once: the spec's rounding point (a double result is first
// cast to float, as the fp32 kernel does, then rounded). With T = float both are the identity, so
// the fp32 kernels' bits are unchanged.
//
// with_storage picks T from a tensor's dtype. An op named in CudaBackend::native_bf16 runs a dtype
// combination its kernels do not template on fp32 copies (core/f32_copies.h: Backend::with_f32's
// widening, done by the op itself).
#pragma once

#include "core/backend.h"

#include <cuda_bf16.h>

#include <initializer_list>
#include <type_traits>

namespace am::cuda {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, float>) {
    return x;
  } else {
    return __float2bfloat16_rn(x);
  }
}

// f(T{}) with T the storage type of dtype dt: __nv_bfloat16 for BF16, else float (F32).
template <typename F>
void with_storage(DType dt, F&& f) {
  if (dt == DType::BF16) {
    f(__nv_bfloat16{});
  } else {
    f(float{});
  }
}

template <typename T>
T* data_as(const Tensor& t) {
  return static_cast<T*>(t.data);
}

inline bool all_f32(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (t->dtype != DType::F32) return false;
  }
  return true;
}

}  // namespace am::cuda

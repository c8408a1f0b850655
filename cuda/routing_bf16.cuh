// Private helpers of routing.cu for bf16 storage (core/backend.h, "bf16 storage"): the kernels
// are templated on the storage type of their float arguments (float or __nv_bfloat16), compute in
// fp32 / double on the widened values, and round once when they store a BF16 element. Here: the
// widening and rounding on the device, the host dispatch from a tensor's dtype to its storage
// type, and the fp32 fallback for an argument an op has no bf16 kernel for.
#pragma once

#include "core/backend.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace am::cuda::moe {

using bf16 = __nv_bfloat16;

// A stored element as fp32: exact for both storage types.
__device__ __forceinline__ float wide(float v) { return v; }
__device__ __forceinline__ float wide(bf16 v) { return __bfloat162float(v); }

// An fp32 value as a stored element of type T: bf16 rounds to nearest even (am::bf16_round).
template <typename T>
__device__ __forceinline__ T narrow(float v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return __float2bfloat16_rn(v);
  } else {
    return v;
  }
}

// An element copied from storage TI to storage TO: bit for bit when the types agree (a NaN keeps
// its payload, as the CPU's widen-then-round does), else widened or rounded once.
template <typename TO, typename TI>
__device__ __forceinline__ TO convert_element(TI v) {
  if constexpr (std::is_same_v<TO, TI>) {
    return v;
  } else {
    return narrow<TO>(wide(v));
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

// The device pointer of a float tensor read as storage type T (F32 <-> float, BF16 <-> bf16).
template <typename T>
T* data_as(const Tensor& t) {
  return static_cast<T*>(t.data);
}

// An fp32 argument for a kernel that reads or writes it only in fp32: the tensor itself when F32;
// for BF16 an fp32 scratch copy, widened from it (exact) at construction, which narrow() rounds
// back into it (call it for outputs, after the kernel: acc outputs then hold round(old + sum), as
// Backend::with_f32 gives). Costs two convert launches: only for arguments the model keeps fp32.
class F32Arg {
 public:
  F32Arg(Backend& be, const Tensor& t) : be_(be), orig_(t), wide_(t) {
    if (t.dtype != DType::BF16) return;
    buf_ = be.alloc(sizeof(float) * static_cast<size_t>(std::max<int64_t>(t.numel(), 1)));
    wide_.data = buf_.get();
    wide_.dtype = DType::F32;
    be.convert(wide_, orig_);
  }
  float* ptr() const { return static_cast<float*>(wide_.data); }
  void narrow() {
    if (orig_.dtype == DType::BF16) be_.convert(orig_, wide_);
  }

 private:
  Backend& be_;
  Tensor orig_, wide_;
  Buffer buf_;
};

}  // namespace am::cuda::moe

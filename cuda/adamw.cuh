// One AdamW element update (Backend::adamw_update's formula, fp32), shared by the per-tensor kernel
// (elementwise.cu) and the multi-tensor one (step.cu) so that both write the same bits. Returns
// false when a value it wrote is not finite.
#pragma once

#include "launch.cuh"

namespace am::cuda {

__device__ __forceinline__ bool adamw_element(float& p, float g, float& m, float& v, float lr, float beta1, float beta2,
                                              float eps, float wd, float gs, float bc1, float bc2) {
  const float gi = g * gs;
  const float mi = beta1 * m + (1.0f - beta1) * gi;
  const float vi = beta2 * v + (1.0f - beta2) * gi * gi;
  m = mi;
  v = vi;
  float pi = p - lr * wd * p;
  pi -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
  p = pi;
  return isfinite(pi) && isfinite(mi) && isfinite(vi);
}

}  // namespace am::cuda

// Causal attention as the tensor-core kernels compute it in bf16 runs (run.precision: bf16,
// Backend::bf16_matmul(); cuda/attention_tc.cu), emulated on the CPU: the same rounding points,
// with every sum in double. Shapes and layouts as cpu/ops_attention.h.
//
// Rounding points (R = round to the nearest bf16, ties to even; am::bf16_round):
//  forward   q, k, v = R(qkv); s_j = scale q.k_j (exact products, summed in double);
//            m = max_j s_j; p_j = exp(s_j - m); l = sum_j p_j (p unrounded);
//            out = sum_j R(p_j) v_j / l; lse = m + log l.
//  backward  q, k, v = R(qkv), do = R(dout); D = dout.out (both unrounded);
//            p_j = exp(scale q.k_j - lse); dp_j = do.v_j; ds_j = p_j (dp_j - D);
//            dv_j += R(p_j) do; dq += R(ds_j) k_j; dk_j += R(ds_j) q; then dq, dk times scale.
// The GPU rounds P relative to the running row maximum of its online softmax and rescales the fp32
// accumulator afterwards, the CPU relative to the final maximum; so the two forwards' P can
// differ by one bf16 ulp here and there (the parity tolerance, tests/cuda/test_cuda_attention_tc.cpp).
//
// With round = false (T = double) the same code is exact attention: the gradient check in
// tests/test_cpu_attention.cpp runs it that way.
#pragma once

#include "core/backend.h"

namespace am::cpu {

template <typename T>
void attention_forward_bf16(T* out, T* lse, const T* qkv, const AttnShape& s, bool round = true);

template <typename T>
void attention_backward_bf16(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse, const AttnShape& s,
                             bool round = true);

}  // namespace am::cpu

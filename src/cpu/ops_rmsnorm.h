// RMSNorm: out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), statistics in double.
#pragma once

#include <cstdint>

namespace am::cpu {

// out (N,d) write, rstd (N) write, x (N,d), w (d).
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t N, int64_t d, double eps);

// dx (N,d) acc, dw (d) acc; dout (N,d), x (N,d), w (d), rstd (N) as saved by the forward.
//   dx_i += rstd * (w_i dout_i - x_i rstd^2 / d * sum_j w_j dout_j x_j)
//   dw_j += sum_t dout[t][j] x[t][j] rstd[t]   (each column summed in row order by one thread)
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t N, int64_t d);

}  // namespace am::cpu

// Row-wise softmax helpers (router probabilities, z-loss, auxiliary losses). Matrices are (N,n).
#pragma once

#include <cstdint>
#include <vector>

namespace am::cpu {

// p = softmax(z) per row (max subtracted, sum in double). p may alias z.
template <typename T>
void softmax_rows(T* p, const T* z, int64_t N, int64_t n);
// dz += p * (dp - <dp, p>) per row.
template <typename T>
void softmax_rows_backward(T* dz, const T* dp, const T* p, int64_t N, int64_t n);
// out (N) = log(sum_j exp(z[t][j])) per row.
template <typename T>
void logsumexp_rows(T* out, const T* z, int64_t N, int64_t n);
// y[t] += alpha * s[t] * x[t]; s (N).
template <typename T>
void axpy_rows(T* y, const T* x, const T* s, double alpha, int64_t N, int64_t n);
// out[j] = sum_t x[t][j] in double, each column summed over rows in order by one thread.
template <typename T>
std::vector<double> column_sums(const T* x, int64_t N, int64_t n);
// x[t][j] += v[j] for every row t; v has n entries.
template <typename T>
void add_to_rows(T* x, const double* v, int64_t N, int64_t n);

}  // namespace am::cpu

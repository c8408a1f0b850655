// Element-wise kernels on flat arrays of n elements.
#pragma once

#include <cstdint>

namespace am::cpu {

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n);  // out may alias a, b
template <typename T>
void axpy(T* y, const T* x, double alpha, int64_t n);  // y += alpha x
template <typename T>
void scale(T* x, double s, int64_t n);  // x *= s
// sum x^2 in double, over fixed chunks of kReduceChunk combined in chunk order.
template <typename T>
double sum_squares(const T* x, int64_t n);

}  // namespace am::cpu

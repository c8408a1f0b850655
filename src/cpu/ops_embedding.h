// Token embedding lookup and its gradient.
#pragma once

#include <cstdint>

namespace am::cpu {

// out (N,d) = table (V,d)[tokens (N)]. Token ids outside [0, V) are an AM_CHECK failure.
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int64_t N, int64_t V, int64_t d);

// dtable (V,d) += dout (N,d) scattered by tokens (N). Each table row is accumulated in token
// order by one thread (threads own ranges of the vocabulary), so bits do not depend on threads.
template <typename T>
void embedding_backward(T* dtable, const int32_t* tokens, const T* dout, int64_t N, int64_t V, int64_t d);

}  // namespace am::cpu

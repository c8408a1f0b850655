// Softmax cross-entropy over the vocabulary, one row per token. Targets < 0 are ignored (loss 0,
// zero gradient row); a target >= V is an AM_CHECK failure (V > 0: Backend checks it).
#pragma once

#include <cstdint>

namespace am::cpu {

// losses (N) write: logsumexp(logits[i]) - logits[i][targets[i]]; logits (N,V), targets (N).
template <typename T>
void cross_entropy_forward(T* losses, const T* logits, const int32_t* targets, int64_t N, int64_t V);

// dlogits (N,V) write: grad_scale * (softmax(logits) - onehot(target)); dlogits may be logits.
// With cross_entropy_forward before it, the bits of a one-pass fused kernel (the same exps, sums
// and roundings).
template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                            double grad_scale);

}  // namespace am::cpu

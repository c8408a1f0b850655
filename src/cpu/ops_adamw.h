// AdamW (PyTorch's, decoupled weight decay), element-wise, exactly the formula of AdamWStep in
// core/backend.h, evaluated in double and stored in T.
#pragma once

#include "core/backend.h"

namespace am::cpu {

// param, m, v (n) updated in place; grad (n) read. Returns whether every value it wrote (param, m
// and v, as stored in T) is finite.
template <typename T>
bool adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWStep& s);

}  // namespace am::cpu

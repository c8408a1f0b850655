// Non-finite values in host tensors: a checkpoint is never written with them, and eval, export
// and resume refuse a checkpoint that holds them (docs/training.md, "Divergence").
#pragma once

#include "io/safetensors.h"

#include <cstdint>
#include <string>
#include <vector>

namespace am {

// The index of the first NaN or infinity among n values of dtype dt (F32, F64 or BF16) at host,
// or -1 when every value is finite.
int64_t first_nonfinite(const void* host, DType dt, int64_t n);

// UserError "<context>: tensor <name> holds a non-finite value (<value> at element <i>)" for the
// first entry of `tensors` that holds one, with `hint`.
void refuse_nonfinite(const std::vector<StEntry>& tensors, const std::string& context, const std::string& hint);

}  // namespace am

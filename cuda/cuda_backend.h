// Entry points of the CUDA backend (compiled when nvcc is found): every Backend op, on the
// default stream. A run checks it against the CPU reference at start-up (train/backend_check.h).
#pragma once

#include "core/backend.h"

#include <memory>

namespace am {

bool cuda_device_available();  // a device is visible and the driver works
// F32 tensors, with bf16 matrix products when bf16_matmul (run.precision: bf16), on device
// `device` modulo the number of devices (the node-local rank of a multi-process run picks its GPU
// this way).
std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device = 0, bool bf16_matmul = false);

}  // namespace am

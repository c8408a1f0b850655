// The compute stream (docs/distributed.md, "Streams"): every kernel, cuBLAS and CUB call, copy and
// memset of the CUDA backend is queued on it, in program order. It is created non-blocking, so it
// has no implicit order with the legacy default stream: work left on stream 0 by mistake would race
// with it, and the simulator reports such a race (cuda/sim/streams.cpp). One per process: a process
// drives one device, and every CudaBackend in it shares the stream (tests build several).
//
// The host reads and writes device memory only through the helpers below, which order the copy on
// the compute stream; the synchronous ones return when the copy is done, so after everything queued
// before it (a host synchronisation, which the simulator counts).
#pragma once

#include "check.cuh"

#include <cstddef>

namespace am::cuda {

cudaStream_t compute_stream();

void copy_to_host(void* host, const void* device, size_t bytes);    // waits for the copy
void copy_from_host(void* device, const void* host, size_t bytes);  // host buffer reusable on return
void copy_on_device(void* dst, const void* src, size_t bytes);      // queued
void fill_bytes(void* device, int value, size_t bytes);             // queued (cudaMemsetAsync)

}  // namespace am::cuda

// Error checks for CUDA and cuBLAS calls: every call and every kernel launch is checked, and a
// failure names the call, the file and the line.
#pragma once

#include "core/error.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#define AM_CUDA(call)                                                                                \
  do {                                                                                               \
    cudaError_t err_ = (call);                                                                       \
    if (err_ != cudaSuccess) {                                                                       \
      throw ::am::InternalError(                                                                     \
          fmt::format("{}:{}: {} failed: {}", __FILE__, __LINE__, #call, cudaGetErrorString(err_))); \
    }                                                                                                \
  } while (0)

#define AM_CUBLAS(call)                                                                                \
  do {                                                                                                 \
    cublasStatus_t st_ = (call);                                                                       \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                                \
      throw ::am::InternalError(                                                                       \
          fmt::format("{}:{}: {} failed: {}", __FILE__, __LINE__, #call, cublasGetStatusString(st_))); \
    }                                                                                                  \
  } while (0)

// After every kernel launch.
#define AM_CUDA_LAUNCHED() AM_CUDA(cudaGetLastError())

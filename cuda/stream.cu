// The compute stream and the host's copies on it: stream.cuh.
#include "stream.cuh"

namespace am::cuda {

cudaStream_t compute_stream() {
  static const cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    AM_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }();  // never destroyed: work may be queued until the process exits
  return stream;
}

void copy_to_host(void* host, const void* device, size_t bytes) {
  if (bytes == 0) return;
  AM_CUDA(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, compute_stream()));
  AM_CUDA(cudaStreamSynchronize(compute_stream()));
}

// Waits for the copy, as cudaMemcpy did: parameters, checkpoints and tests upload this way; the
// step's batch uploads are asynchronous, from pinned memory (Backend::upload_async).
void copy_from_host(void* device, const void* host, size_t bytes) {
  if (bytes == 0) return;
  AM_CUDA(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, compute_stream()));
  AM_CUDA(cudaStreamSynchronize(compute_stream()));
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  AM_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, compute_stream()));
}

void fill_bytes(void* device, int value, size_t bytes) {
  if (bytes == 0) return;
  AM_CUDA(cudaMemsetAsync(device, value, bytes, compute_stream()));
}

}  // namespace am::cuda

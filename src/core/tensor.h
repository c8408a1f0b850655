// DType and Tensor: a non-owning, typed view of memory that belongs to a Backend (host memory for
// the CPU backend, device memory for CUDA). Shapes are row-major; the last dimension is contiguous.
// Buffer is the owning counterpart (RAII), allocated by a Backend.
#pragma once

#include "core/error.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace am {

enum class DType : uint8_t { F32, F64, BF16, I32 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);                 // "F32", "F64", "BF16", "I32" (the safetensors spelling)
DType dtype_from_name(const std::string& name);  // inverse; throws UserError on unknown names

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::F64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}

struct Tensor {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  std::array<int64_t, kMaxDims> dims{};

  Tensor() = default;
  Tensor(void* d, DType t, std::initializer_list<int64_t> shape);
  Tensor(void* d, DType t, const std::vector<int64_t>& shape);

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const;       // i < 0 counts from the back
  std::string shape_str() const;  // "(4, 128, 64)"

  // The same memory with another shape of equal numel.
  Tensor reshape(std::initializer_list<int64_t> shape) const;
  // Rows [begin, begin + count) along dimension 0.
  Tensor rows(int64_t begin, int64_t count) const;

  template <typename T>
  T* as() const {
    AM_CHECK(dtype == dtype_of<T>(), "tensor of dtype {} read as {}", dtype_name(dtype), dtype_name(dtype_of<T>()));
    return static_cast<T*>(data);
  }
};

// Owning allocation. The deleter returns the memory to the backend that made it.
class Buffer {
 public:
  Buffer() = default;
  Buffer(void* ptr, size_t bytes, std::function<void(void*)> deleter)
      : ptr_(ptr), bytes_(bytes), deleter_(std::move(deleter)) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    reset();
    swap(o);
    return *this;
  }
  ~Buffer() { reset(); }

  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // A view of the whole buffer (or its first numel(shape) elements) with the given shape.
  Tensor view(DType t, std::initializer_list<int64_t> shape) const;

 private:
  void reset() {
    if (ptr_ && deleter_) deleter_(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void swap(Buffer& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(deleter_, o.deleter_);
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  std::function<void(void*)> deleter_;
};

}  // namespace am

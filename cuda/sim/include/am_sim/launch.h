// Kernel launches and shared memory in the simulator (what cuda/launch.cuh's launch<kernel>(),
// AM_SHARED and AM_DYNAMIC_SHARED expand to). A launch copies its arguments once, converted to
// the kernel's parameter types as a <<<...>>> launch does, and hands the runtime a body that
// every simulated thread runs; the runtime checks the configuration and the pointer arguments,
// queues the launch on its stream and runs the grid (cuda/sim/scheduler.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace am::sim {

// One kernel argument as the runtime sees it: a pointer (checked to be device memory or null;
// writable unless it points to const) or a value whose bytes may hold pointers (a functor).
struct KernelArg {
  enum Kind { Pointer, Value } kind = Value;
  const void* ptr = nullptr;    // Pointer: the value
  bool writable = true;         // Pointer: not a pointer to const
  const void* bytes = nullptr;  // Value: the argument's bytes in the launch's copy
  size_t size = 0;
};

struct LaunchRequest {
  const char* kernel = "";    // the kernel's name
  const void* key = nullptr;  // the kernel's identity (cudaFuncSetAttribute)
  dim3 grid, block;
  size_t smem = 0;
  cudaStream_t stream = nullptr;
  std::vector<KernelArg> args;
  std::shared_ptr<void> storage;  // keeps the argument copy alive until the launch has run
  const void* storage_begin = nullptr;
  size_t storage_size = 0;
  void (*thread_body)(const void* args) = nullptr;  // runs one thread's kernel body
};

void submit_launch(LaunchRequest&& req);

// The per-block shared memory of AM_SHARED (one object per declaration site) and of
// AM_DYNAMIC_SHARED (the launch's dynamic bytes), poisoned with 0xFF when the block starts.
void* block_shared_bytes(const void* site, size_t bytes, size_t align);
void* dynamic_shared_bytes();

template <typename T>
T& block_shared(const void* site) {
  return *static_cast<T*>(block_shared_bytes(site, sizeof(T), alignof(T)));
}
template <typename T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_bytes());
}

template <auto K>
const char* kernel_name() {
  static const std::string name = [](const std::string& f) {  // "... [with auto K = ns::kernel<...>]"
    const size_t at = f.find("K = ");
    if (at == std::string::npos) return f;
    size_t end = f.rfind(']');
    const size_t semi = f.find(';', at);
    if (semi != std::string::npos && semi < end) end = semi;
    return f.substr(at + 4, end - at - 4);
  }(__PRETTY_FUNCTION__);
  return name.c_str();
}

template <typename F>
struct KernelTraits;
template <typename... P>
struct KernelTraits<void (*)(P...)> {
  using Args = std::tuple<std::decay_t<P>...>;
};

// One thread's body: the kernel called with (copies of) the launch's arguments.
template <auto K, typename Args>
void run_kernel_thread(const void* args) {
  std::apply(K, *static_cast<const Args*>(args));
}

template <typename T>
void describe_arg(std::vector<KernelArg>& out, const T& v) {
  KernelArg a;
  if constexpr (std::is_pointer_v<T>) {
    a.kind = KernelArg::Pointer;
    a.ptr = static_cast<const void*>(v);
    a.writable = !std::is_const_v<std::remove_pointer_t<T>>;
  } else {
    a.kind = KernelArg::Value;
    a.bytes = &v;
    a.size = sizeof(T);
  }
  out.push_back(a);
}

template <auto K, typename... A>
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A&&... a) {
  using Args = typename KernelTraits<decltype(K)>::Args;
  static_assert(std::tuple_size_v<Args> == sizeof...(A), "launch: wrong number of kernel arguments");
  auto args = std::make_shared<Args>(std::forward<A>(a)...);
  LaunchRequest req;
  req.kernel = kernel_name<K>();
  req.key = reinterpret_cast<const void*>(K);
  req.grid = grid;
  req.block = block;
  req.smem = smem;
  req.stream = stream;
  std::apply([&](const auto&... v) { (describe_arg(req.args, v), ...); }, *args);
  req.storage_begin = args.get();
  req.storage_size = sizeof(Args);
  req.thread_body = &run_kernel_thread<K, Args>;
  req.storage = std::move(args);
  submit_launch(std::move(req));
}

}  // namespace am::sim

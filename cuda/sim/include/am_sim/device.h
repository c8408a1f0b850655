// The device side of CUDA C++ in the simulator: the built-in indices, barriers, warp collectives,
// atomics and the few intrinsics cuda/*.cu uses. Each CUDA thread of a block is a fiber
// (cuda/sim/scheduler.cpp); a barrier or a warp collective suspends it until its partners arrive.
// The index and collective functions live out of line in the runtime, so that the memory checker
// (cuda/sim/memcheck.cpp), which sees every load and store of the kernel code, sees only the
// kernel's own accesses.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace am::sim {

uint3 thread_index();
uint3 block_index();
dim3 block_dim();
dim3 grid_dim();
void syncthreads();

enum class WarpOp : int { Sync, ShflIdx, ShflXor, ShflUp, ShflDown, Ballot, Any, All, Mma };
// One warp collective: every lane named in `mask` must call it (with the same mask and op);
// returns this lane's result (shuffles: the source lane's value; votes: the vote).
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width);

// One lane's operands of a tensor-core matrix multiply-accumulate (mma_bf16_m16n8k16 below): its
// fragment registers, in the PTX ISA's layout for mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32.
struct MmaLane {
  const uint32_t* a;  // 4 registers: a0..a7, two bf16 each (the lower half holds the even element)
  const uint32_t* b;  // 2 registers: b0..b3
  const float* c;     // 4 accumulators: c0..c3
  float* d;           // 4 results (may be c)
};
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, c: a collective of the whole warp
// (all 32 lanes, converged); cuda/sim/mma.cpp gathers the fragments and computes D = A B + C.
inline void mma_bf16_m16n8k16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  MmaLane lane{a, b, c, d};
  uint64_t ptr = 0;
  const MmaLane* lp = &lane;
  std::memcpy(&ptr, &lp, sizeof(lp));
  warp_collective(WarpOp::Mma, 0xffffffffu, ptr, 0, 32);
}

template <typename T>
inline T shuffle(WarpOp op, unsigned mask, T v, int arg, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move values of at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_collective(op, mask, bits, arg, width);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

}  // namespace am::sim

#define threadIdx (::am::sim::thread_index())
#define blockIdx (::am::sim::block_index())
#define blockDim (::am::sim::block_dim())
#define gridDim (::am::sim::grid_dim())
inline constexpr int warpSize = 32;

inline void __syncthreads() { ::am::sim::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::am::sim::warp_collective(::am::sim::WarpOp::Sync, mask, 0, 0, 32);
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::am::sim::shuffle(::am::sim::WarpOp::ShflIdx, mask, v, src, width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::am::sim::shuffle(::am::sim::WarpOp::ShflXor, mask, v, lane_mask, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::am::sim::shuffle(::am::sim::WarpOp::ShflUp, mask, v, static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::am::sim::shuffle(::am::sim::WarpOp::ShflDown, mask, v, static_cast<int>(delta), width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(::am::sim::warp_collective(::am::sim::WarpOp::Ballot, mask, pred != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
  return static_cast<int>(::am::sim::warp_collective(::am::sim::WarpOp::Any, mask, pred != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
  return static_cast<int>(::am::sim::warp_collective(::am::sim::WarpOp::All, mask, pred != 0, 0, 32));
}

// ---- atomics: relaxed read-modify-writes (the memory checker records them as atomic writes) ----
template <typename T>
inline T am_sim_atomic_add(T* p, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    U* q = reinterpret_cast<U*>(p);
    U old = __atomic_load_n(q, __ATOMIC_RELAXED);
    for (;;) {
      T cur;
      std::memcpy(&cur, &old, sizeof(T));
      const T next = cur + v;
      U want;
      std::memcpy(&want, &next, sizeof(T));
      if (__atomic_compare_exchange_n(q, &old, want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return cur;
    }
  } else {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  }
}
inline int atomicAdd(int* p, int v) { return am_sim_atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return am_sim_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return am_sim_atomic_add(p, v); }
inline float atomicAdd(float* p, float v) { return am_sim_atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return am_sim_atomic_add(p, v); }
template <typename T>
inline T am_sim_atomic_min(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
  return old;
}
template <typename T>
inline T am_sim_atomic_max(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
  return old;
}
inline int atomicMin(int* p, int v) { return am_sim_atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return am_sim_atomic_min(p, v); }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) { return am_sim_atomic_min(p, v); }
inline long long atomicMin(long long* p, long long v) { return am_sim_atomic_min(p, v); }
inline int atomicMax(int* p, int v) { return am_sim_atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return am_sim_atomic_max(p, v); }
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) { return am_sim_atomic_max(p, v); }
inline long long atomicMax(long long* p, long long v) { return am_sim_atomic_max(p, v); }
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline int atomicCAS(int* p, int cmp, int v) {
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;
}
inline unsigned atomicCAS(unsigned* p, unsigned cmp, unsigned v) {
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long cmp, unsigned long long v) {
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return cmp;
}

// ---- the integer min and max of device code (CUDA declares them for device code only) ----
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a < b ? b : a; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a < b ? b : a; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a < b ? b : a; }

// ---- intrinsics ----
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int u) { return std::bit_cast<float>(u); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

// cudaFuncSetAttribute on a kernel (nvcc's runtime header has this template for device code).
template <typename... P>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

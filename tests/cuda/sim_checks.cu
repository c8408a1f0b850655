// The simulator's checks have teeth: small kernels with deliberate bugs (an off-by-one index, a
// missing __syncthreads, a missing __syncwarp, a wrong shuffle lane, a barrier in divergent code,
// races, stream hazards, bad pointers) and the error each one must produce. Built in the simulator
// build only (tests/CMakeLists.txt compiles it like cuda/*.cu).
#include "launch.cuh"
#include "mma.cuh"

#include "am_sim/sim.h"
#include "backends/backend_factory.h"
#include "core/backend.h"
#include "cuda_backend.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

using am::cuda::launch;
using Catch::Matchers::Contains;

namespace {

// Device memory holding `host`, and a way back.
template <typename T>
T* to_device(const std::vector<T>& host) {
  T* p = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), sizeof(T) * host.size()) == cudaSuccess);
  REQUIRE(cudaMemcpy(p, host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice) == cudaSuccess);
  return p;
}
template <typename T>
std::vector<T> to_host(const T* p, size_t n) {
  std::vector<T> out(n);
  REQUIRE(cudaMemcpy(out.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost) == cudaSuccess);
  return out;
}

// Eager streams for one scope, so that a launch's error comes from the launch (lazy streams
// report it at the next synchronisation); with the race check (schedule `first`, each launch run
// again under `second`) when asked.
struct Eager {
  am::sim::Settings saved = am::sim::settings();
  Eager() { am::sim::settings().lazy_streams = false; }
  ~Eager() { am::sim::settings() = saved; }
};
struct RaceCheck : Eager {
  RaceCheck(const char* first, const char* second) {
    am::sim::settings().schedule = am::sim::parse_schedule(first);
    am::sim::settings().racecheck = true;
    am::sim::settings().racecheck_schedule = am::sim::parse_schedule(second);
  }
};

// ---- the kernels: each a correct version and a bug put in by hand ----

__global__ void scale_kernel(float* y, const float* x, int n, bool off_by_one) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (off_by_one ? i <= n : i < n) y[i] = 2 * x[i];
}

// One block of 64 threads sums 64 values in shared memory.
__global__ void block_sum_kernel(float* out, const float* x, bool drop_barrier) {
  AM_SHARED(float, s, [64]);
  s[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  for (int w = 32; w > 0; w /= 2) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    if (!drop_barrier) __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = s[0];
}

// Lane 0 of the warp writes a table that every lane then reads (as select.cu's top-p does).
__global__ void warp_table_kernel(int* out, bool drop_syncwarp) {
  AM_SHARED(int, table, [32]);
  if (threadIdx.x == 0) {
    for (int j = 0; j < 32; ++j) table[j] = 100 + j;
  }
  if (!drop_syncwarp) __syncwarp();
  out[threadIdx.x] = table[31 - threadIdx.x];
}

// A warp sum by butterfly shuffles; `lane_bug` shuffles from a lane outside the mask.
__global__ void warp_sum_kernel(float* out, const float* x, bool lane_bug) {
  float v = x[threadIdx.x];
  const unsigned mask = lane_bug ? 0x0000ffffu : 0xffffffffu;
  if (threadIdx.x < 16 || !lane_bug) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(mask, v, off);
  }
  if (threadIdx.x == 0) out[0] = v;
}

// One tensor-core product by the block's lanes; lane `leaver` returns first (a diverged warp).
__global__ void mma_kernel(float* y, int leaver) {
  if (static_cast<int>(threadIdx.x) == leaver) return;
  am::cuda::mma::FragA a{{0x3f803f80u, 0x3f803f80u, 0x3f803f80u, 0x3f803f80u}};  // every element 1.0
  am::cuda::mma::FragB b{{0x3f803f80u, 0x3f803f80u}};
  am::cuda::mma::FragC c{{0.f, 0.f, 0.f, 0.f}};
  am::cuda::mma::mma_bf16(c, a, b, c);
  y[threadIdx.x] = c.r[0];
}

__global__ void early_exit_barrier_kernel(float* y, int n) {
  if (static_cast<int>(threadIdx.x) >= n) return;  // the bug: threads leave before the barrier
  __syncthreads();
  y[threadIdx.x] = 1;
}

__global__ void same_word_kernel(float* y) {
  if (threadIdx.x == 0) y[0] = static_cast<float>(blockIdx.x);  // every block writes y[0]
}

__global__ void copy_kernel(float* y, const float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i];
}

__global__ void shared_overrun_kernel(float* y) {
  AM_SHARED(float, s, [32]);
  s[threadIdx.x] = 1;  // 64 threads, 32 slots
  __syncthreads();
  y[threadIdx.x] = s[threadIdx.x];
}

}  // namespace

TEST_CASE("sim: an off-by-one index is an out-of-bounds error naming the kernel, block and thread", "[sim]") {
  Eager eager;
  const int n = 100;
  float* x = to_device(std::vector<float>(n + 1, 1.f));
  float* y = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * n) == cudaSuccess);
  launch<scale_kernel>(1, 128, 0, 0, y, x, n, false);
  REQUIRE(to_host(y, n)[n - 1] == 2.f);
  REQUIRE_THROWS_WITH(
      launch<scale_kernel>(1, 128, 0, 0, y, x, n, true),
      Contains("scale_kernel block (0,0,0) thread (100,0,0): write of 4 bytes") && Contains("4 bytes past its end"));
  cudaFree(x);
  cudaFree(y);
}

TEST_CASE("sim: bounds are exact inside the caching allocator's rounded blocks, and released blocks are off limits",
          "[sim]") {
  Eager eager;
  auto be = am::make_cuda_backend(am::DType::F32, 0, false);
  const int n = 10;  // 40 bytes, in a 512-byte block
  am::Buffer xb = be->alloc(sizeof(float) * (n + 1));
  float* x = static_cast<float*>(xb.get());
  REQUIRE(cudaMemset(x, 0, sizeof(float) * (n + 1)) == cudaSuccess);
  float* y = nullptr;
  {
    am::Buffer yb = be->alloc(sizeof(float) * n);
    y = static_cast<float*>(yb.get());
    REQUIRE_THROWS_WITH(launch<scale_kernel>(1, 32, 0, 0, y, x, n, true), Contains("4 bytes past its end"));
    // The same block handed out again is poisoned again: a read before any write is reported.
  }
  am::Buffer again = be->alloc(sizeof(float) * n);
  REQUIRE(again.get() == y);  // the cache gave the same block back
  REQUIRE_THROWS_WITH(launch<copy_kernel>(1, 32, 0, 0, x, static_cast<const float*>(again.get()), n),
                      Contains("reads device memory never written"));
  {
    am::Buffer zb = be->alloc(sizeof(float) * n);
    y = static_cast<float*>(zb.get());
  }  // released to the cache
  REQUIRE_THROWS_WITH(launch<copy_kernel>(1, 32, 0, 0, y, x, n), Contains("released to the caching allocator"));
}

TEST_CASE("sim: a missing __syncthreads is a shared-memory race, and gives different bits under another schedule",
          "[sim]") {
  std::vector<float> host(64);
  for (int i = 0; i < 64; ++i) host[i] = static_cast<float>(i + 1);
  float* x = to_device(host);
  float* out = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&out), sizeof(float)) == cudaSuccess);
  {
    Eager eager;  // the shared-memory race detector
    launch<block_sum_kernel>(1, 64, 0, 0, out, x, false);
    REQUIRE(to_host(out, 1)[0] == 64.f * 65.f / 2.f);
    REQUIRE_THROWS_WITH(launch<block_sum_kernel>(1, 64, 0, 0, out, x, true),
                        Contains("block_sum_kernel block (0,0,0)") && Contains("of static shared memory was") &&
                            Contains("with no barrier since"));
  }
  {
    RaceCheck check("asc", "desc");  // the same bug, found by the second schedule alone
    am::sim::settings().shared_checks = false;
    launch<block_sum_kernel>(1, 64, 0, 0, out, x, false);
    REQUIRE_THROWS_WITH(launch<block_sum_kernel>(1, 64, 0, 0, out, x, true),
                        Contains("block_sum_kernel is not deterministic: run under schedules"));
  }
  cudaFree(x);
  cudaFree(out);
}

TEST_CASE("sim: a missing __syncwarp is a shared-memory race, and caught by the warp-reversed and descending schedules",
          "[sim]") {
  int* out = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&out), sizeof(int) * 32) == cudaSuccess);
  {
    Eager eager;
    launch<warp_table_kernel>(1, 32, 0, 0, out, false);
    REQUIRE(to_host(out, 32)[0] == 131);
    // (Lane 0 first: the others read its writes with no __syncwarp between; lane 0 last: they
    // read words nobody has written yet.)
    REQUIRE_THROWS_WITH(launch<warp_table_kernel>(1, 32, 0, 0, out, true),
                        Contains("warp_table_kernel block (0,0,0)") &&
                            (Contains("written by thread 0 with no barrier since (same warp: no __syncwarp since)") ||
                             Contains("reads static shared memory never written in this block")));
  }
  for (const char* second : {"desc", "warprev"}) {
    RaceCheck check("asc", second);
    am::sim::settings().shared_checks = false;
    launch<warp_table_kernel>(1, 32, 0, 0, out, false);
    REQUIRE(to_host(out, 32)[0] == 131);
    REQUIRE_THROWS_WITH(launch<warp_table_kernel>(1, 32, 0, 0, out, true),
                        Contains("warp_table_kernel is not deterministic"));
  }
  cudaFree(out);
}

TEST_CASE("sim: a shuffle from a lane outside its mask, and a collective not reached by its mask, are errors",
          "[sim]") {
  Eager eager;
  std::vector<float> host(32, 1.f);
  float* x = to_device(host);
  float* out = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&out), sizeof(float)) == cudaSuccess);
  launch<warp_sum_kernel>(1, 32, 0, 0, out, x, false);
  REQUIRE(to_host(out, 1)[0] == 32.f);
  REQUIRE_THROWS_WITH(launch<warp_sum_kernel>(1, 32, 0, 0, out, x, true),
                      Contains("__shfl_xor_sync on lane 0 reads lane 16, which is not in the mask 0x0000ffff"));
  cudaFree(x);
  cudaFree(out);
}

TEST_CASE("sim: a tensor-core mma needs the whole warp, converged", "[sim]") {
  Eager eager;
  float* y = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * 32) == cudaSuccess);
  launch<mma_kernel>(1, 32, 0, 0, y, -1);
  REQUIRE(to_host(y, 32) == std::vector<float>(32, 16.f));  // 16 products of 1 x 1
  REQUIRE_THROWS_WITH(launch<mma_kernel>(1, 32, 0, 0, y, 5),
                      Contains("mma.sync.m16n8k16 with mask 0xffffffff, but lane 5 has exited"));
  REQUIRE_THROWS_WITH(launch<mma_kernel>(1, 16, 0, 0, y, -1), Contains("names lane 16, which does not exist"));
  cudaFree(y);
}

TEST_CASE("sim: a __syncthreads that some threads never reach is an error", "[sim]") {
  Eager eager;
  float* y = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * 64) == cudaSuccess);
  REQUIRE_THROWS_WITH(launch<early_exit_barrier_kernel>(1, 64, 0, 0, y, 40),
                      Contains("__syncthreads reached by 40 of 64 threads"));
  cudaFree(y);
}

TEST_CASE("sim: two blocks writing one word is a race, and shared-memory overruns are caught", "[sim]") {
  Eager eager;
  float* y = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * 64) == cudaSuccess);
  REQUIRE_THROWS_WITH(launch<same_word_kernel>(2, 32, 0, 0, y),
                      Contains("a race: the word was written by block") && Contains("earlier in this launch"));
  REQUIRE_THROWS_WITH(launch<shared_overrun_kernel>(1, 64, 0, 0, y),
                      Contains("out of bounds: offset") && Contains("of static shared memory of 128 bytes"));
  cudaFree(y);
}

TEST_CASE("sim: host pointers, wrong copy kinds and never-written reads are errors", "[sim]") {
  Eager eager;
  std::vector<float> host(8, 1.f);
  float* y = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * 8) == cudaSuccess);
  REQUIRE_THROWS_WITH(launch<copy_kernel>(1, 32, 0, 0, y, host.data(), 8),
                      Contains("argument 2") && Contains("is a host pointer"));
  REQUIRE_THROWS_WITH(cudaMemcpy(host.data(), y, 32, cudaMemcpyHostToDevice),
                      Contains("destination") && Contains("is host memory"));
  REQUIRE_THROWS_WITH(cudaMemcpy(host.data(), y, 32, cudaMemcpyDeviceToHost),
                      Contains("reads device memory never written"));
  float* z = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&z), sizeof(float) * 8) == cudaSuccess);
  REQUIRE_THROWS_WITH(launch<copy_kernel>(1, 32, 0, 0, z, y, 8), Contains("reads device memory never written"));
  cudaFree(y);
  cudaFree(z);
}

TEST_CASE("sim: reading a buffer written on another stream without an event wait is a hazard naming both", "[sim]") {
  for (const bool lazy : {false, true}) {
    am::sim::Settings saved = am::sim::settings();
    am::sim::settings().lazy_streams = lazy;
    const int n = 64;
    float* x = to_device(std::vector<float>(n, 3.f));
    float* y = nullptr;
    float* z = nullptr;
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * n) == cudaSuccess);
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&z), sizeof(float) * n) == cudaSuccess);
    cudaStream_t side = nullptr;
    cudaEvent_t done = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaEventCreateWithFlags(&done, cudaEventDisableTiming) == cudaSuccess);
    launch<copy_kernel>(1, 64, 0, side, y, x, n);  // y written on the side stream
    // With the wait, the default stream may read y.
    REQUIRE(cudaEventRecord(done, side) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(nullptr, done, 0) == cudaSuccess);
    launch<copy_kernel>(1, 64, 0, 0, z, y, n);
    REQUIRE(to_host(z, n)[n - 1] == 3.f);
    // Without it: an error that names both launches.
    launch<copy_kernel>(1, 64, 0, side, y, z, n);
    auto racy = [&] {
      launch<copy_kernel>(1, 64, 0, 0, z, y, n);
      cudaDeviceSynchronize();  // lazy streams run the work here
    };
    // (Eager: the read of y on stream 0 after the side stream's write. Lazy: the side stream's read
    // of z, which the default stream's racy copy overwrote first.)
    REQUIRE_THROWS_WITH(racy(), Contains("copy_kernel block") && Contains("was last written by") &&
                                    Contains("copy_kernel on stream") && Contains("not ordered after it"));
    cudaDeviceSynchronize();
    cudaStreamDestroy(side);
    cudaEventDestroy(done);
    am::sim::settings() = saved;
  }
}

namespace {

// Runs `touch` in a child process; returns what it printed to stderr and whether it died of a
// signal (exit status 3: it threw instead).
template <typename F>
std::pair<std::string, bool> in_child(F touch) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    dup2(fds[1], 2);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);                     // the test framework's report of the signal
    am::sim::install_fault_handler();  // over the test framework's own SIGSEGV handler
    try {
      touch();
    } catch (...) {
      _exit(3);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[512];
  for (ssize_t r; (r = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(r));
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  return {err, WIFSIGNALED(status)};
}

void* (*volatile libc_memset)(void*, int, size_t) = std::memset;

}  // namespace

TEST_CASE("sim: cudaMemcpyAsync from pinned memory does not wait, and refilling the buffer too early is caught",
          "[sim]") {
  const int n = 64;
  int* dev = nullptr;
  int* host = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&dev), sizeof(int) * n) == cudaSuccess);
  REQUIRE(cudaMallocHost(reinterpret_cast<void**>(&host), sizeof(int) * n) == cudaSuccess);
  for (const bool lazy : {false, true}) {
    INFO("lazy streams: " << lazy);
    am::sim::Settings saved = am::sim::settings();
    am::sim::settings().lazy_streams = lazy;
    for (int i = 0; i < n; ++i) host[i] = i;
    am::sim::reset_counters();
    REQUIRE(cudaMemcpyAsync(dev, host, sizeof(int) * n, cudaMemcpyHostToDevice, nullptr) == cudaSuccess);
    CHECK(am::sim::counters().host_syncs() == 0);
    CHECK(am::sim::counters().memcpy_h2d == 1);
    REQUIRE(to_host(dev, n)[n - 1] == n - 1);  // a synchronous copy back waits for it
    // The correct program: refill only after a synchronisation.
    host[n - 1] = 1000;
    REQUIRE(cudaMemcpyAsync(dev, host, sizeof(int) * n, cudaMemcpyHostToDevice, nullptr) == cudaSuccess);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    host[n - 1] = 2000;
    REQUIRE(to_host(dev, n)[n - 1] == 1000);
    // The bug: the host refills its pinned buffer before the copy is known to have run. Eager
    // streams have run it already; lazy ones run it at the synchronisation and report the change.
    REQUIRE(cudaMemcpyAsync(dev, host, sizeof(int) * n, cudaMemcpyHostToDevice, nullptr) == cudaSuccess);
    host[0] = -5;
    if (lazy) {
      REQUIRE_THROWS_WITH(cudaDeviceSynchronize(), Contains("cudaMemcpyAsync host to device: the pinned host buffer") &&
                                                       Contains("changed between the call and the copy"));
    } else {
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      CHECK(to_host(dev, n)[0] == 0);
    }
    // Pageable memory: staged by the host, so the call is a synchronisation.
    std::vector<int> pageable(n, 9);
    am::sim::reset_counters();
    REQUIRE(cudaMemcpyAsync(dev, pageable.data(), sizeof(int) * n, cudaMemcpyHostToDevice, nullptr) == cudaSuccess);
    CHECK(am::sim::counters().sync_memcpy == 1);
    pageable[0] = 0;
    CHECK(to_host(dev, n)[0] == 9);
    am::sim::settings() = saved;
  }
  REQUIRE(cudaFreeHost(host) == cudaSuccess);
  REQUIRE_THROWS_WITH(cudaFreeHost(dev), Contains("not memory from cudaMallocHost"));
  cudaFree(dev);
}

TEST_CASE("sim: host code touching device memory dies with a message naming the allocation", "[sim]") {
  float* y = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * 16) == cudaSuccess);
  // Host code in a file compiled like cuda/*.cu: the memory checker sees the store.
  auto [checked, signalled] = in_child([&] {
    volatile float* p = y;
    p[3] = 1.f;
  });
  CHECK(signalled);
  CHECK_THAT(checked, Contains("host code wrote device memory") && Contains("offset 12 of device allocation"));
  // Anywhere else (here: libc): the protected pages fault and the handler names the allocation.
  auto [faulted, signalled2] = in_child([&] { libc_memset(y + 5, 0, 4); });
  CHECK(signalled2);
  CHECK_THAT(faulted, Contains("host code touched device memory") && Contains("offset 20 of device allocation"));
  cudaFree(y);
}

TEST_CASE("sim: more dynamic shared memory than the default limit needs cudaFuncSetAttribute", "[sim]") {
  Eager eager;
  float* y = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&y), sizeof(float) * 64) == cudaSuccess);
  cudaGetLastError();
  CHECK_THROWS_WITH(launch<copy_kernel>(1, 32, 64 * 1024, 0, y, y, 0), Contains("invalid argument"));
  CHECK_THROWS_WITH(launch<copy_kernel>(1, 2048, 0, 0, y, y, 0), Contains("invalid configuration argument"));
  cudaFree(y);
}

TEST_CASE("sim: run.backend auto never selects the simulator, and cuda says what it is", "[sim]") {
  CHECK(am::make_backend("auto", am::Precision::FP32, 1)->name() == "cpu");
  auto be = am::make_backend("cuda", am::Precision::FP32, 1);
  CHECK(be->name() == "cuda");
  CHECK_THAT(be->describe(), Contains("autonomoe CUDA simulator (CPU)"));
}

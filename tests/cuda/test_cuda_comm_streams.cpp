// Communication on its own stream (issue 11 point 5): the NCCL communicator's gradient reduction
// (all_reduce_sum_start ... wait), device all-reduce and ZeRO-1 all-gather queue their collectives
// on the communicator's stream, ordered with the kernels on stream 0 by events, and make no host
// synchronisation (nor does the row exchange, on stream 0 itself). The simulator's stream checker
// fails a test whose collective reads a buffer a kernel wrote without an event in between, or
// whose later kernel touches a buffer the collective wrote before stream 0 waited for it; its
// counters fail one that synchronises.
//
// One process: a one-rank NCCL communicator (over the single-process communicator), whose
// collectives are local copies but queue the same calls, streams and events as on several ranks.
// The tests tagged [np2] (hidden) run under `mpirun -np 2` (ctest sim_comm_streams_np2_*): the
// gradient reduction of a ParamStore over the world and replica groups, the EP all-reduce of the
// gradient norm and the all-gather with unequal parts, values and counts on both ranks.
#include "core/device_counts.h"
#include "core/tensor_buf.h"
#include "cuda_test_util.h"
#include "dist/dist.h"
#include "dist/grad_sync.h"
#include "dist/launch.h"
#include "nccl_comm.h"
#include "params/params.h"
#include "stream.cuh"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <numeric>

#ifdef AM_CUDA_SIM
#include "am_sim/sim.h"
#endif

using namespace am;
using namespace am::test;
using Catch::Matchers::Contains;

namespace {

// The counts of f (nullopt off the simulator: nothing is counted there).
std::optional<DeviceCounts> counted(const std::function<void()>& f) {
  reset_device_counts();
  f();
  return device_counts();
}

std::vector<float> host_of(Backend& be, Tensor t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.download(v.data(), t);
  return v;
}

Tensor part(Tensor t, int64_t begin, int64_t n) { return Tensor(t.as<float>() + begin, DType::F32, {n}); }

}  // namespace

TEST_CASE("nccl comm: a gradient reduction makes no host synchronisation and is ordered by events", "[cuda]") {
  auto be = make_cuda_backend(DType::F32, 0, false);
  std::unique_ptr<Comm> comm = make_nccl_comm(make_single_comm());
  const int64_t n = 96;
  TensorBuf g(*be, DType::F32, {n}), other(*be, DType::F32, {n});
  const std::vector<float> g0 = randn(n, 1), o0 = randn(n, 2);
  be->upload(g, g0.data());
  be->upload(other, o0.data());
  const Tensor a = part(g, 0, 40), b = part(g, 40, n - 40);
  auto backward_and_reduce = [&] {
    be->scale(a, 2.0);              // the last kernel of the layer that produced bucket a
    comm->all_reduce_sum_start(a);  // on the comm stream, after it
    be->scale(b, 2.0);              // the backward goes on below, on stream 0
    comm->all_reduce_sum_start(b);
    be->scale(other, 3.0);  // more backward work beside the reductions
    comm->wait();           // stream 0 waits for them; the host does not
    be->scale(g, 0.5);      // GradReducer::finish's division, after the reductions
  };
  backward_and_reduce();  // warm-up (the first calls may allocate)
  const std::optional<DeviceCounts> c = counted(backward_and_reduce);
  if (c) {
    INFO("stream " << c->sync_stream << " event " << c->sync_event << " device " << c->sync_device << " memcpy "
                   << c->sync_memcpy);
    CHECK(c->host_syncs() == 0);
    CHECK(c->kernel_launches == 4);
    CHECK(c->launches == 6);  // 4 kernels, 2 all-reduces
  }
  // One rank: the sum is the identity; each element went x2 x0.5 twice (warm-up and counted run).
  const std::vector<float> got = host_of(*be, g), oth = host_of(*be, other);
  for (int64_t i = 0; i < n; ++i) {
    CHECK(got[i] == g0[i]);
    CHECK(oth[i] == o0[i] * 3.f * 3.f);
  }
  // wait() with nothing started queues nothing.
  const std::optional<DeviceCounts> idle = counted([&] { comm->wait(); });
  if (idle) CHECK(idle->launches + idle->host_syncs() == 0);
}

TEST_CASE("nccl comm: a device all-reduce, the ZeRO-1 all-gather and the row exchange make no host synchronisation",
          "[cuda]") {
  auto be = make_cuda_backend(DType::F32, 0, false);
  std::unique_ptr<Comm> comm = make_nccl_comm(make_single_comm());
  const int64_t n = 32;
  TensorBuf x(*be, DType::F32, {n});
  const std::vector<float> x0 = randn(n, 3);
  be->upload(x, x0.data());
  auto reduce_then_use = [&] {
    be->scale(x, 4.0);
    comm->all_reduce_sum(x);  // e.g. the balancing statistics: the next kernel reads them
    be->scale(x, 0.25);
  };
  reduce_then_use();
  const std::optional<DeviceCounts> r = counted(reduce_then_use);
  if (r) {
    CHECK(r->host_syncs() == 0);
    CHECK(r->launches == 3);
  }
  auto update_then_gather = [&] {
    be->scale(x, 2.0);  // the AdamW update of this rank's part
    comm->all_gather(x, {n}, {0});
    be->scale(x, 0.5);  // the next step's forward
  };
  update_then_gather();
  const std::optional<DeviceCounts> ag = counted(update_then_gather);
  if (ag) {
    CHECK(ag->host_syncs() == 0);
    CHECK(ag->launches == 3);  // 2 kernels, 1 group of broadcasts
  }
  const std::vector<float> got = host_of(*be, x);
  for (int64_t i = 0; i < n; ++i) CHECK(got[i] == x0[i]);
  // The expert-parallel row exchange: on stream 0 itself, no host synchronisation either.
  TensorBuf rows(*be, DType::F32, {4, 8}), recv(*be, DType::F32, {4, 8});
  be->upload(rows, x0.data());
  auto exchange = [&] {
    be->scale(rows, 2.0);
    comm->all_to_all_rows(rows, {4}, recv, {4});
    be->scale(recv, 0.5);
  };
  exchange();
  const std::optional<DeviceCounts> ex = counted(exchange);
  if (ex) {
    CHECK(ex->host_syncs() == 0);
    CHECK(ex->launches == 3);
  }
  const std::vector<float> back = host_of(*be, recv);
  for (int64_t i = 0; i < n; ++i) CHECK(back[i] == x0[i] * 2.f * 2.f * 0.5f);
}

TEST_CASE("dist.comm mpi with the CUDA backend is refused: MPI would touch device memory", "[cuda]") {
  CHECK_THROWS_WITH(make_world_comm("mpi", "cuda"),
                    Contains("dist.comm is mpi but the run's backend is cuda") && Contains("GPU memory"));
}

#ifdef AM_CUDA_SIM
// The stream model the communicator and the compute stream rely on: a non-blocking stream is not
// ordered after the legacy default stream (so the comm stream must wait for an event), a blocking
// one is (with what stream 0 waited for), and an event recorded on stream 0 and waited for orders
// it. The writes on stream 0 are memsets, each its own byte pattern.
TEST_CASE("sim: a non-blocking stream is ordered after stream 0 only by an event", "[cuda][sim]") {
  for (const bool lazy : {false, true}) {
    INFO("lazy streams: " << lazy);
    sim::Settings saved = sim::settings();
    sim::settings().lazy_streams = lazy;
    auto be = make_cuda_backend(DType::F32, 0, false);
    const int64_t n = 16;
    TensorBuf x(*be, DType::F32, {n}), y(*be, DType::F32, {n});
    be->zero(y);
    be->synchronize();  // the compute stream's work is done: below, streams of the test's own
    const auto pattern = [](int byte) {
      uint32_t bits = 0x01010101u * static_cast<uint32_t>(byte);
      float f = 0.f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    };
    cudaStream_t blocking = nullptr, side = nullptr;
    cudaEvent_t ready = nullptr;
    REQUIRE(cudaStreamCreate(&blocking) == cudaSuccess);
    REQUIRE(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming) == cudaSuccess);
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    REQUIRE(cudaMemsetAsync(x.t().data, 0x40, bytes, 0) == cudaSuccess);  // stream 0, no host wait since
    // A blocking stream is implicitly ordered after stream 0.
    REQUIRE(cudaMemcpyAsync(y.t().data, x.t().data, bytes, cudaMemcpyDeviceToDevice, blocking) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(blocking) == cudaSuccess);
    CHECK(host_of(*be, y)[n - 1] == pattern(0x40));
    // A non-blocking one, after an event.
    REQUIRE(cudaMemsetAsync(x.t().data, 0x41, bytes, 0) == cudaSuccess);
    REQUIRE(cudaEventRecord(ready, 0) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(side, ready, 0) == cudaSuccess);
    REQUIRE(cudaMemcpyAsync(y.t().data, x.t().data, bytes, cudaMemcpyDeviceToDevice, side) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(side) == cudaSuccess);
    CHECK(host_of(*be, y)[n - 1] == pattern(0x41));
    // Transitively: the side stream writes x, stream 0 waits for its event, and a blocking stream
    // (implicitly after stream 0's work, the wait included) then reads x.
    REQUIRE(cudaMemsetAsync(x.t().data, 0x42, bytes, side) == cudaSuccess);
    REQUIRE(cudaEventRecord(ready, side) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(0, ready, 0) == cudaSuccess);
    REQUIRE(cudaMemcpyAsync(y.t().data, x.t().data, bytes, cudaMemcpyDeviceToDevice, blocking) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(blocking) == cudaSuccess);
    CHECK(host_of(*be, y)[0] == pattern(0x42));
    // Without the event: the copy on the side stream reads x unordered after stream 0's write.
    REQUIRE(cudaMemsetAsync(x.t().data, 0x43, bytes, 0) == cudaSuccess);
    auto racy = [&] {
      cudaMemcpyAsync(y.t().data, x.t().data, bytes, cudaMemcpyDeviceToDevice, side);
      cudaDeviceSynchronize();  // lazy streams run it here
    };
    CHECK_THROWS_WITH(racy(), Contains("cudaMemcpyAsync device to device on stream") && Contains("last written by") &&
                                  Contains("cudaStreamWaitEvent missing"));
    cudaDeviceSynchronize();
    cudaEventDestroy(ready);
    cudaStreamDestroy(side);
    cudaStreamDestroy(blocking);
    sim::settings() = saved;
  }
}

// The CUDA backend's work is on its own non-blocking compute stream, not on stream 0: a copy on
// stream 0 that reads what a backend op wrote, with no event or host wait in between, is a race
// the simulator reports (a launch site left on stream 0 would be one too), and after an event
// recorded on the compute stream it is ordered.
TEST_CASE("sim: the CUDA backend runs on a non-blocking compute stream, ordered with stream 0 by events",
          "[cuda][sim]") {
  for (const bool lazy : {false, true}) {
    INFO("lazy streams: " << lazy);
    sim::Settings saved = sim::settings();
    sim::settings().lazy_streams = lazy;
    auto be = make_cuda_backend(DType::F32, 0, false);
    const int64_t n = 16;
    TensorBuf x(*be, DType::F32, {n}), y(*be, DType::F32, {n});
    const std::vector<float> x0 = randn(n, 4);
    be->upload(x, x0.data());
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    cudaEvent_t done = nullptr;
    REQUIRE(cudaEventCreateWithFlags(&done, cudaEventDisableTiming) == cudaSuccess);
    reset_device_counts();
    be->scale(x, 2.0);
    CHECK(device_counts()->legacy_stream_ops == 0);
    REQUIRE(cudaEventRecord(done, cuda::compute_stream()) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(0, done, 0) == cudaSuccess);
    REQUIRE(cudaMemcpyAsync(y.t().data, x.t().data, bytes, cudaMemcpyDeviceToDevice, 0) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(0) == cudaSuccess);
    CHECK(device_counts()->legacy_stream_ops == 1);  // the test's copy
    CHECK(host_of(*be, y)[n - 1] == x0[n - 1] * 2.f);
    be->scale(x, 2.0);
    auto racy = [&] {
      cudaMemcpyAsync(y.t().data, x.t().data, bytes, cudaMemcpyDeviceToDevice, 0);
      cudaDeviceSynchronize();
    };
    if (!lazy) {
      CHECK_THROWS_WITH(racy(), Contains("on stream 0 reads") && Contains("last written by") &&
                                    Contains("cudaStreamWaitEvent missing"));
    } else {
      // Lazy streams run stream 0's copy first, before the scale it is not ordered after: the
      // copy reads x as it was (the checker sees a write after a read only through its result).
      racy();
      CHECK(host_of(*be, y)[n - 1] == x0[n - 1] * 2.f);
      CHECK(host_of(*be, x)[n - 1] == x0[n - 1] * 4.f);
    }
    cudaDeviceSynchronize();
    cudaEventDestroy(done);
    sim::settings() = saved;
  }
}
#endif

// ---- two ranks (mpirun -np 2; hidden from a plain run) ----

namespace {

// A table of dense and expert tensors in alternating runs (several buckets of each kind).
ParamTable two_kind_table() {
  ParamTable t;
  t.add("embed", {6, 4}, Init::Normal, 0.1);
  for (int l = 0; l < 2; ++l) {
    t.add(fmt::format("l{}.attn", l), {4, 4}, Init::Normal, 0.1);
    t.add(fmt::format("l{}.norm", l), {4}, Init::Ones);
    t.add_expert(fmt::format("l{}.e0", l), {3, 4}, Init::Normal, 0.1, 0);
    t.add_expert(fmt::format("l{}.e1", l), {5}, Init::Normal, 0.1, 1);
  }
  t.add("head", {3, 4}, Init::Normal, 0.1);
  return t;
}

// Rank r's gradient value at element i (before the kernels of the "backward" double it).
float grad_value(int rank, int64_t i) { return 0.25f * static_cast<float>(i % 7) + static_cast<float>(rank) - 0.5f; }

}  // namespace

TEST_CASE("two ranks: nccl comm gradient reduction, EP norm all-reduce, all-gather, no host sync", "[.][np2]") {
  REQUIRE(mpi_active());
  auto be = make_cuda_backend(DType::F32, 0, false);
  std::unique_ptr<Comm> world = make_world_comm("nccl", "cuda");
  REQUIRE(world->size() == 2);
  const int rank = world->rank();
  for (const int ep : {1, 2}) {
    INFO("ep " << ep);
    Distributed layout(*world, ep);
    const DistContext& dist = layout.context();
    ParamStore store(*be, two_kind_table());
    const ParamTable& t = store.table();
    const int64_t total = t.total();
    std::vector<float> g0(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i) g0[i] = grad_value(rank, i);
    TensorBuf norm_sq(*be, DType::F64, {2});
    const std::vector<SumSquaresSpan> spans = grad_norm_spans(t);
    TensorBuf span_rows(*be, DType::I32, {static_cast<int64_t>(spans.size()), kSumSquaresSpanWords});
    be->upload(span_rows, spans.data());
    auto step = [&] {
      be->upload(store.all_grads(), g0.data());
      be->zero(norm_sq);
      GradReducer reducer(store, dist);
      for (int i = t.size() - 1; i >= 1; --i) {  // the backward, top down: a kernel, then ready
        be->scale(store.grad(i), 2.0);
        reducer.ready(i, i);
      }
      be->scale(store.grad(0), 2.0);
      reducer.finish();
      global_grad_norm_sq(store, &dist, norm_sq, span_rows);
    };
    step();  // warm-up
    reset_device_counts();
    step();
    if (const std::optional<DeviceCounts> c = device_counts()) {
      INFO("memcpy " << c->sync_memcpy << " stream " << c->sync_stream << " device " << c->sync_device);
      CHECK(c->host_syncs() == 1);  // the upload of the fresh gradients (a copy the host waits for)
    }
    // Dense: the mean of both ranks' 2 g; experts: over the replica group (both ranks with ep 1,
    // this rank alone with ep 2).
    const std::vector<float> got = host_of(*be, store.all_grads());
    double dense = 0, experts = 0;
    for (int i = 0; i < t.size(); ++i) {
      const ParamSpec& s = t.at(i);
      const bool expert = s.expert >= 0;
      for (int64_t k = s.offset; k < s.offset + s.numel(); ++k) {
        const float both = 2 * (grad_value(0, k) + grad_value(1, k)) / 2;
        const float want = expert && ep == 2 ? 2 * grad_value(rank, k) / 2 : both;
        CHECK(got[k] == want);
        (expert ? experts : dense) += static_cast<double>(want) * want;
      }
    }
    // The experts' sum of squares is summed over the EP group (with ep 2: both ranks' experts).
    if (ep == 2) {
      experts = 0;
      for (int r = 0; r < 2; ++r) {
        for (int i = 0; i < t.size(); ++i) {
          const ParamSpec& s = t.at(i);
          if (s.expert < 0) continue;
          for (int64_t k = s.offset; k < s.offset + s.numel(); ++k) {
            const double v = static_cast<double>(2 * grad_value(r, k) / 2);
            experts += v * v;
          }
        }
      }
    }
    std::vector<double> nsq(2);
    be->download(nsq.data(), norm_sq);
    CHECK(nsq[0] == Approx(dense).epsilon(1e-12));
    CHECK(nsq[1] == Approx(experts).epsilon(1e-12));
  }
  // ZeRO-1's all-gather with unequal parts: rank r's part updated by a kernel, then gathered.
  const int64_t n = 9;
  const std::vector<int64_t> counts = {3, 6}, offsets = {6, 0};
  TensorBuf x(*be, DType::F32, {n});
  std::vector<float> x0(static_cast<size_t>(n));
  std::iota(x0.begin(), x0.end(), 1.f);
  be->upload(x, x0.data());
  auto update_then_gather = [&] {
    be->scale(part(x, offsets[rank], counts[rank]), 3.0);  // this rank's shard of the update
    world->all_gather(x, counts, offsets);
  };
  update_then_gather();
  const std::optional<DeviceCounts> ag = counted(update_then_gather);
  if (ag) CHECK(ag->host_syncs() == 0);
  const std::vector<float> got = host_of(*be, x);
  for (int64_t i = 0; i < n; ++i) CHECK(got[i] == x0[i] * 9.f);
  // A collective runs on the device whatever the host does next: here rank 0 waits for the
  // device and rank 1 goes straight to a host-side barrier (the simulator with lazy streams ran
  // collectives only when waited for, which left rank 0 in the all-reduce and rank 1 in the
  // barrier: a hang).
  world->all_reduce_sum(x.t());
  if (rank == 0) be->synchronize();
  world->barrier();
  const std::vector<float> sum = host_of(*be, x);
  CHECK(sum[0] == 2 * x0[0] * 9.f);
}

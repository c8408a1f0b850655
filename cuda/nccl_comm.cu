#include "check.cuh"
#include "nccl_comm.h"
#include "stream.cuh"

#include <nccl.h>

#include <chrono>

namespace am {
namespace {

#define AM_NCCL(call)                                                                              \
  do {                                                                                             \
    ncclResult_t r_ = (call);                                                                      \
    if (r_ != ncclSuccess) {                                                                       \
      throw ::am::InternalError(                                                                   \
          fmt::format("{}:{}: {} failed: {}", __FILE__, __LINE__, #call, ncclGetErrorString(r_))); \
    }                                                                                              \
  } while (0)

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::BF16:
      return ncclBfloat16;
    case DType::I32:
      return ncclInt32;
  }
  return ncclFloat32;
}

int64_t row_width(const Tensor& t) {
  int64_t w = 1;
  for (int i = 1; i < t.ndim; ++i) w *= t.dims[i];
  return w;
}

// Streams (docs/distributed.md, "Streams"): every kernel of the CUDA backend runs on the compute
// stream (cuda/stream.cuh, `compute`). The gradient all-reduces, the ZeRO-1 all-gather
// and the device all-reduces of small statistics run on this communicator's own non-blocking
// stream, ordered both ways by events and never by the host:
//   after_compute(): `ready` recorded on the compute stream, the comm stream waits for it (the
//                    collective starts after the kernels that wrote its buffers);
//   compute_after(): `done` recorded on the comm stream, the compute stream waits for it (every
//                    kernel, copy or free queued on it afterwards runs after the collective).
// A host read of the results (a download: a copy on the compute stream, then a wait for that
// stream) is therefore ordered after them too. The row all-to-all runs on the compute stream
// itself: the next kernel consumes it.
class NcclComm final : public Comm {
 public:
  NcclComm(std::unique_ptr<Comm> host, ncclComm_t comm) : host_(std::move(host)), comm_(comm) {
    AM_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    AM_CUDA(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    AM_CUDA(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  ~NcclComm() override {
    cudaStreamSynchronize(stream_);  // its collectives complete before the communicator goes
    if (comm_) ncclCommDestroy(comm_);
    cudaEventDestroy(done_);
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string name() const override { return "nccl"; }

  // Ordered like a kernel on stream 0 (its results are there for the next kernel or download),
  // with no host synchronisation.
  void all_reduce_sum(Tensor t) override {
    if (t.numel() == 0) return;
    const auto t0 = std::chrono::steady_clock::now();
    after_compute();
    reduce(t);
    compute_after();
    timing_.all_reduce_s += seconds_since(t0);
  }
  void all_reduce_sum_start(Tensor t) override {
    // No shortcut for one rank: training makes no collective calls then, and autonomoe-comm-bench
    // measures the NCCL path itself on a single GPU.
    if (t.numel() == 0) return;
    const auto t0 = std::chrono::steady_clock::now();
    after_compute();  // after the kernels that produced t
    reduce(t);
    started_ = true;
    timing_.all_reduce_s += seconds_since(t0);
  }
  // Stream 0 waits for every started reduction; the host does not.
  void wait() override {
    if (!started_) return;
    compute_after();
    started_ = false;
  }
  double all_reduce_sum(double x) override { return host_->all_reduce_sum(x); }
  void all_reduce_sum(std::vector<int64_t>& v) override { host_->all_reduce_sum(v); }
  void all_reduce_sum_values(std::vector<double>& v) override { host_->all_reduce_sum_values(v); }
  std::vector<int64_t> all_to_all(const std::vector<int64_t>& send, int per_rank) override {
    return host_->all_to_all(send, per_rank);
  }
  void all_to_all_rows(Tensor send, const std::vector<int64_t>& send_rows, Tensor recv,
                       const std::vector<int64_t>& recv_rows) override {
    const int64_t w = row_width(send);
    AM_CHECK(row_width(recv) == w && send.dtype == recv.dtype, "row exchange shapes");
    const size_t es = dtype_size(send.dtype);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t so = 0, ro = 0;
    AM_NCCL(ncclGroupStart());
    for (int r = 0; r < size(); ++r) {
      if (send_rows[r] > 0) {
        AM_NCCL(ncclSend(static_cast<char*>(send.data) + so * w * es, static_cast<size_t>(send_rows[r] * w),
                         nccl_type(send.dtype), r, comm_, cuda::compute_stream()));
      }
      if (recv_rows[r] > 0) {
        AM_NCCL(ncclRecv(static_cast<char*>(recv.data) + ro * w * es, static_cast<size_t>(recv_rows[r] * w),
                         nccl_type(recv.dtype), r, comm_, cuda::compute_stream()));
      }
      so += send_rows[r];
      ro += recv_rows[r];
    }
    AM_NCCL(ncclGroupEnd());  // on stream 0: the kernels after it read recv; the host never does
    timing_.all_to_all_s += seconds_since(t0);
  }
  // Rank r's part broadcast from r, all parts in one group (ncclAllGather would need equal parts),
  // on the comm stream after the updates that wrote the parts; stream 0 waits for it. No shortcut
  // for one rank (training calls it only on a group of several), so one process tests this path.
  void all_gather(Tensor t, const std::vector<int64_t>& counts, const std::vector<int64_t>& offsets) override {
    check_gather_parts(t, counts, offsets, size());
    const size_t es = dtype_size(t.dtype);
    const auto t0 = std::chrono::steady_clock::now();
    after_compute();
    AM_NCCL(ncclGroupStart());
    for (int r = 0; r < size(); ++r) {
      if (counts[r] == 0) continue;
      char* part = static_cast<char*>(t.data) + static_cast<size_t>(offsets[r]) * es;
      AM_NCCL(ncclBroadcast(part, part, static_cast<size_t>(counts[r]), nccl_type(t.dtype), r, comm_, stream_));
    }
    AM_NCCL(ncclGroupEnd());
    compute_after();
    timing_.all_gather_s += seconds_since(t0);
  }
  void broadcast(void* host, size_t bytes, int root) override { host_->broadcast(host, bytes, root); }
  void send(const void* host, size_t bytes, int to) override { host_->send(host, bytes, to); }
  void recv(void* host, size_t bytes, int from) override { host_->recv(host, bytes, from); }
  void barrier() override { host_->barrier(); }
  std::unique_ptr<Comm> split(int color, int key) override {
    std::unique_ptr<Comm> sub_host = host_->split(color, key);
    ncclComm_t sub = nullptr;
    AM_NCCL(ncclCommSplit(comm_, color, key, &sub, nullptr));
    return std::make_unique<NcclComm>(std::move(sub_host), sub);
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // The comm stream waits for what the compute stream has queued so far.
  void after_compute() {
    AM_CUDA(cudaEventRecord(ready_, cuda::compute_stream()));
    AM_CUDA(cudaStreamWaitEvent(stream_, ready_, 0));
  }
  // The compute stream waits for what the comm stream has queued so far.
  void compute_after() {
    AM_CUDA(cudaEventRecord(done_, stream_));
    AM_CUDA(cudaStreamWaitEvent(cuda::compute_stream(), done_, 0));
  }
  void reduce(Tensor t) {
    AM_NCCL(ncclAllReduce(t.data, t.data, static_cast<size_t>(t.numel()), nccl_type(t.dtype), ncclSum, comm_, stream_));
  }
  std::unique_ptr<Comm> host_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;  // the comm stream (non-blocking: no implicit order with stream 0)
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  bool started_ = false;  // reductions started since the last wait()
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> host) {
  ncclUniqueId id{};
  if (host->rank() == 0) AM_NCCL(ncclGetUniqueId(&id));
  host->broadcast(&id, sizeof id, 0);
  ncclComm_t comm = nullptr;
  AM_NCCL(ncclCommInitRank(&comm, host->size(), id, host->rank()));
  return std::make_unique<NcclComm>(std::move(host), comm);
}

}  // namespace am

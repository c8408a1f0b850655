// Comm over MPI on host buffers (the CPU backend under mpirun).
#include "dist/comm.h"
#include "dist/launch.h"

#include "core/error.h"

#include <mpi.h>

#include <chrono>

namespace am {
namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT;
    case DType::BF16:
      break;
  }
  throw InternalError(fmt::format("MPI has no datatype for {}", dtype_name(t)));
}

// The datatype of a pure data movement (no arithmetic): bf16 moves as 16-bit words.
MPI_Datatype mpi_move_type(DType t) { return t == DType::BF16 ? MPI_UINT16_T : mpi_type(t); }

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw InternalError(fmt::format("{} failed (MPI error {})", what, rc));
}

int as_int(int64_t x, const char* what) {
  AM_CHECK(x >= 0 && x <= INT32_MAX, "{} = {} does not fit an MPI count", what, x);
  return static_cast<int>(x);
}

class MpiComm final : public Comm {
 public:
  explicit MpiComm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiComm() override {
    if (owned_ && comm_ != MPI_COMM_NULL && mpi_active()) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  void all_reduce_sum(Tensor t) override {
    if (t.numel() == 0) return;
    const double t0 = now_s();
    check(MPI_Allreduce(MPI_IN_PLACE, t.data, as_int(t.numel(), "numel"), mpi_type(t.dtype), MPI_SUM, comm_),
          "MPI_Allreduce");
    timing_.all_reduce_s += now_s() - t0;
  }
  void all_reduce_sum_start(Tensor t) override {
    if (t.numel() == 0) return;
    const double t0 = now_s();
    pending_.emplace_back();
    check(MPI_Iallreduce(MPI_IN_PLACE, t.data, as_int(t.numel(), "numel"), mpi_type(t.dtype), MPI_SUM, comm_,
                         &pending_.back()),
          "MPI_Iallreduce");
    timing_.all_reduce_s += now_s() - t0;
  }
  void wait() override {
    if (pending_.empty()) return;
    const double t0 = now_s();
    check(MPI_Waitall(static_cast<int>(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    pending_.clear();
    timing_.all_reduce_s += now_s() - t0;
  }
  double all_reduce_sum(double x) override {
    check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
    return x;
  }
  void all_reduce_sum(std::vector<int64_t>& v) override {
    if (v.empty()) return;
    check(MPI_Allreduce(MPI_IN_PLACE, v.data(), as_int(static_cast<int64_t>(v.size()), "size"), MPI_INT64_T, MPI_SUM,
                        comm_),
          "MPI_Allreduce");
  }
  void all_reduce_sum_values(std::vector<double>& v) override {
    if (v.empty()) return;
    check(MPI_Allreduce(MPI_IN_PLACE, v.data(), as_int(static_cast<int64_t>(v.size()), "size"), MPI_DOUBLE, MPI_SUM,
                        comm_),
          "MPI_Allreduce");
  }
  std::vector<int64_t> all_to_all(const std::vector<int64_t>& send, int per_rank) override {
    AM_CHECK(static_cast<int>(send.size()) == per_rank * size_, "all_to_all of {} values, {} per rank x {}",
             send.size(), per_rank, size_);
    std::vector<int64_t> recv(send.size());
    check(MPI_Alltoall(send.data(), per_rank, MPI_INT64_T, recv.data(), per_rank, MPI_INT64_T, comm_), "MPI_Alltoall");
    return recv;
  }
  void all_to_all_rows(Tensor send, const std::vector<int64_t>& send_rows, Tensor recv,
                       const std::vector<int64_t>& recv_rows) override {
    AM_CHECK(static_cast<int>(send_rows.size()) == size_ && static_cast<int>(recv_rows.size()) == size_,
             "row exchange counts for {} ranks", size_);
    AM_CHECK(send.dtype == recv.dtype, "row exchange of {} into {}", dtype_name(send.dtype), dtype_name(recv.dtype));
    auto row_width = [](const Tensor& t) {
      int64_t w = 1;
      for (int i = 1; i < t.ndim; ++i) w *= t.dims[i];
      return w;
    };
    const int64_t w = row_width(send);
    AM_CHECK(row_width(recv) == w, "row exchange of rows of {} into rows of {}", w, row_width(recv));
    std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
    int64_t so = 0, ro = 0;
    for (int r = 0; r < size_; ++r) {
      sc[r] = as_int(send_rows[r] * w, "send count");
      sd[r] = as_int(so, "send offset");
      rc[r] = as_int(recv_rows[r] * w, "recv count");
      rd[r] = as_int(ro, "recv offset");
      so += send_rows[r] * w;
      ro += recv_rows[r] * w;
    }
    AM_CHECK(so <= send.numel() && ro <= recv.numel(), "row exchange of {} / {} elements into {} / {}", so, ro,
             send.numel(), recv.numel());
    const double t0 = now_s();
    check(MPI_Alltoallv(send.data, sc.data(), sd.data(), mpi_move_type(send.dtype), recv.data, rc.data(), rd.data(),
                        mpi_move_type(recv.dtype), comm_),
          "MPI_Alltoallv");
    timing_.all_to_all_s += now_s() - t0;
  }
  void all_gather(Tensor t, const std::vector<int64_t>& counts, const std::vector<int64_t>& offsets) override {
    check_gather_parts(t, counts, offsets, size_);
    std::vector<int> c(size_), d(size_);
    for (int r = 0; r < size_; ++r) {
      c[r] = as_int(counts[r], "all-gather count");
      d[r] = as_int(offsets[r], "all-gather offset");
    }
    const double t0 = now_s();
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, t.data, c.data(), d.data(), mpi_type(t.dtype), comm_),
          "MPI_Allgatherv");
    timing_.all_gather_s += now_s() - t0;
  }
  void broadcast(void* host, size_t bytes, int root) override {
    check(MPI_Bcast(host, as_int(static_cast<int64_t>(bytes), "bytes"), MPI_BYTE, root, comm_), "MPI_Bcast");
  }
  void send(const void* host, size_t bytes, int to) override {
    // In pieces of at most 1 GiB: MPI counts are int.
    const char* p = static_cast<const char*>(host);
    for (size_t off = 0; off < bytes || off == 0; off += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, bytes - off));
      check(MPI_Send(p + off, n, MPI_BYTE, to, kTag, comm_), "MPI_Send");
      if (bytes == 0) break;
    }
  }
  void recv(void* host, size_t bytes, int from) override {
    // The size of each piece is checked before it is received (MPI_Probe): a shorter message would
    // leave the rest of the buffer as it was, a longer one fail as truncated.
    char* p = static_cast<char*>(host);
    for (size_t off = 0; off < bytes || off == 0; off += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, bytes - off));
      MPI_Status st;
      check(MPI_Probe(from, kTag, comm_, &st), "MPI_Probe");
      int got = 0;
      check(MPI_Get_count(&st, MPI_BYTE, &got), "MPI_Get_count");
      if (got != n) throw MessageSizeError("", bytes, off + static_cast<size_t>(got), got > n, from);
      check(MPI_Recv(p + off, n, MPI_BYTE, from, kTag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
      if (bytes == 0) break;
    }
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  std::unique_ptr<Comm> split(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    return std::make_unique<MpiComm>(sub, true);
  }

 private:
  static constexpr size_t kPiece = size_t{1} << 30;
  static constexpr int kTag = 7;
  MPI_Comm comm_;
  bool owned_;
  std::vector<MPI_Request> pending_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(void* mpi_comm) {
  return std::make_unique<MpiComm>(*static_cast<MPI_Comm*>(mpi_comm), false);
}

}  // namespace am

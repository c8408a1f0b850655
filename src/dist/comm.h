// Comm: the one communication interface of multi-process runs, with three implementations —
// single process (no-ops), MPI (CPU buffers: MPI_Allreduce, MPI_Alltoallv, MPI_Allgatherv) and NCCL
// (GPU buffers).
// Tensors live in the memory of the backend the run uses (host for the CPU backend with MPI,
// device for CUDA with NCCL; MPI with the CUDA backend is refused at start-up, make_world_comm).
// Every call is collective over the communicator's ranks unless it says otherwise.
//
// Ordering of the Tensor calls (docs/distributed.md, "Streams"): each is ordered like a backend
// op. On the host (single, MPI) the call completes before it returns (all_reduce_sum_start: at
// wait()). With NCCL it is queued on the device after every op queued before it and before every
// op queued after it (after wait() for the started reductions), and the host does not wait:
// results are read through the backend (a download), never through t.data on the host. A buffer
// handed to all_reduce_sum_start must stay allocated until wait() has been called.
#pragma once

#include "core/error.h"
#include "core/tensor.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace am {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "single", "mpi", "nccl"

  // t (any shape, F32/F64) := sum over ranks of t, in place.
  virtual void all_reduce_sum(Tensor t) = 0;
  // The same, started without waiting (gradient reduction overlapped with the backward pass);
  // t must not be touched until wait() returns. wait() completes every started reduction.
  virtual void all_reduce_sum_start(Tensor t) = 0;
  virtual void wait() = 0;
  // Host scalars and counts: the sum over ranks.
  virtual double all_reduce_sum(double x) = 0;
  virtual void all_reduce_sum(std::vector<int64_t>& v) = 0;
  // A host vector of doubles, in one call (MoE balancing statistics).
  virtual void all_reduce_sum_values(std::vector<double>& v) = 0;
  // send[r] goes to rank r; returns recv with recv[r] from rank r. `per_rank` values each (host).
  virtual std::vector<int64_t> all_to_all(const std::vector<int64_t>& send, int per_rank) = 0;
  // Row exchange: send (sum send_rows, w) holds the rows for rank 0, then rank 1, ...; recv
  // (sum recv_rows, w) receives rank 0's rows, then rank 1's, ... (recv_rows from all_to_all).
  virtual void all_to_all_rows(Tensor send, const std::vector<int64_t>& send_rows, Tensor recv,
                               const std::vector<int64_t>& recv_rows) = 0;
  // In-place all-gather with a part of its own size per rank (MPI_Allgatherv): t is flat (F32/F64)
  // and rank r's part is elements [offsets[r], offsets[r] + counts[r]) (parts disjoint; a count
  // may be 0). On return every rank's t holds every rank's part; elements outside all parts are
  // left alone. (ZeRO-1: the parameters each rank updated, to every rank.)
  virtual void all_gather(Tensor t, const std::vector<int64_t>& counts, const std::vector<int64_t>& offsets) = 0;
  // Host bytes from `root` to every rank.
  virtual void broadcast(void* host, size_t bytes, int root) = 0;
  // Point to point, host bytes (checkpoint gathering). recv() throws MessageSizeError when the
  // message sent is not `bytes` long (recv_expecting() says what the message was).
  virtual void send(const void* host, size_t bytes, int to) = 0;
  virtual void recv(void* host, size_t bytes, int from) = 0;
  virtual void barrier() = 0;
  // The ranks with the same color form a new communicator, ordered by key.
  virtual std::unique_ptr<Comm> split(int color, int key) = 0;

  // Seconds the host spent in gradient reductions (calls and waits), in row exchanges and in
  // all-gathers: with MPI the time blocked in the transfers; with NCCL only the time to queue
  // them (the transfers run on the device, beside the kernels).
  struct Timing {
    double all_reduce_s = 0, all_to_all_s = 0, all_gather_s = 0;
  };
  const Timing& timing() const { return timing_; }
  void reset_timing() { timing_ = {}; }

 protected:
  Timing timing_;
};

// A received message of another size than the receiver expected: the ranks disagree about what
// they exchange (another config or another build on some rank).
class MessageSizeError : public UserError {
 public:
  MessageSizeError(const std::string& what, size_t expected, size_t received, bool at_least, int from);
  size_t expected, received;
  int from;
};

// comm.recv(), with a MessageSizeError that names `what` the message was (e.g. "tensor
// layers.1.moe.w_up of the checkpoint").
void recv_expecting(Comm& comm, void* host, size_t bytes, int from, const std::string& what);

// AM_CHECKs all_gather's arguments for a communicator of `ranks` ranks: one count and offset per
// rank, every part inside t, parts disjoint.
void check_gather_parts(const Tensor& t, const std::vector<int64_t>& counts, const std::vector<int64_t>& offsets,
                        int ranks);

// A communicator of one process (every collective is the identity).
std::unique_ptr<Comm> make_single_comm();

}  // namespace am

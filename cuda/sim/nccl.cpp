// The NCCL subset cuda/nccl_comm.cu calls, for the simulator: the toolkit's <nccl.h> declarations,
// implemented on MPI, with "device memory" being host memory in the simulator's arena.
//
//  - Communicators. ncclGetUniqueId fills the id with pid, time and a counter; every rank of
//    MPI_COMM_WORLD calls ncclCommInitRank together, and MPI_Comm_split(MPI_COMM_WORLD, color =
//    a hash of the id's bytes, key = rank) groups the processes holding the same id (the size and
//    rank must then be nranks and rank). Each communicator keeps two MPI communicators: `mpi` for
//    the data operations, which run in stream order (perhaps late, in the lazy stream mode), and
//    `host` for ncclCommSplit, which runs at once, so the two never interleave differently on two
//    ranks. Without MPI (MPI_Init never called), one rank: every operation is a local copy.
//  - Data operations. Each is one simulator operation on its stream: it checks its buffers as the
//    runtime's accesses (initialised when read, ordered after their last writer's stream), then
//    moves them with the arena open. It runs when it is queued, with lazy streams too (after the
//    operations it is ordered after): a GPU runs a collective whatever its host does next, so a
//    deferred one could leave this rank waiting in a host-side MPI call while its peer waits in
//    the collective. ncclAllReduce: sum of f32, f64, i32 or bf16 (a custom MPI_Op:
//    float sum rounded to nearest even).
//  - Groups. Calls between ncclGroupStart and ncclGroupEnd are queued; ncclGroupEnd enqueues one
//    operation that posts the sends and receives (MPI_Isend / MPI_Irecv), runs the collectives in
//    call order and waits for all. A call outside a group is a group of its own.
#include "sim_internal.h"

#include <fmt/format.h>
#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>
#include <nccl.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;   // data operations (MPI_COMM_NULL: the single-process local mode)
  MPI_Comm host = MPI_COMM_NULL;  // host-side calls (ncclCommSplit)
  int rank = 0;
  int size = 1;
  ~ncclComm() {
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return;
    if (mpi != MPI_COMM_NULL) MPI_Comm_free(&mpi);
    if (host != MPI_COMM_NULL) MPI_Comm_free(&host);
  }
};

namespace {

using am::sim::fail;
using CommPtr = std::shared_ptr<ncclComm>;

// The live communicators. Queued operations hold their own reference, so ncclCommDestroy before
// they have run (lazy streams) frees the MPI communicators only after them.
std::mutex g_mu;
std::map<ncclComm*, CommPtr> g_comms;

CommPtr find_comm(ncclComm_t c) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_comms.find(c);
  return it == g_comms.end() ? nullptr : it->second;
}

ncclComm_t add_comm(CommPtr c) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_comms[c.get()] = c;
  return c.get();
}

template <class... A>
ncclResult_t invalid(fmt::format_string<A...> f, A&&... a) {
  std::fprintf(stderr, "[cuda-sim] NCCL: %s\n", fmt::format(f, std::forward<A>(a)...).c_str());
  return ncclInvalidArgument;
}

bool mpi_up() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

std::string mpi_error(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return std::string(text, static_cast<size_t>(len));
}

// A communicator of `split` (taken over), plus a duplicate for the data operations.
ncclResult_t make_comm(MPI_Comm split, ncclComm_t* out) {
  auto c = std::make_shared<ncclComm>();
  c->host = split;
  MPI_Comm_rank(split, &c->rank);
  MPI_Comm_size(split, &c->size);
  if (MPI_Comm_dup(split, &c->mpi) != MPI_SUCCESS) return ncclSystemError;
  MPI_Comm_set_errhandler(c->host, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
  *out = add_comm(std::move(c));
  return ncclSuccess;
}

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8:
    case ncclFloat8e4m3:
    case ncclFloat8e5m2:
      return 1;
    case ncclFloat16:
    case ncclBfloat16:
      return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32:
      return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64:
      return 8;
    default:
      return 0;
  }
}

// bf16 sum: in float, rounded to nearest even (a NaN stays a quiet NaN).
float bf16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }
uint16_t float_to_bf16(float f) {
  const auto u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

enum class Kind { AllReduce, Broadcast, Send, Recv };
struct Op {
  Kind kind;
  const char* name;
  const void* send;
  void* recv;
  size_t count;
  ncclDataType_t type;
  int peer;  // the root of a broadcast
  cudaStream_t stream;
  CommPtr comm;  // set by add_op
  size_t bytes() const { return count * type_size(type); }
  bool is_root() const { return kind == Kind::Broadcast && comm->rank == peer; }
};

thread_local int t_depth = 0;
thread_local std::vector<Op> t_group;

// Runs inside the group's operation, with the arena open: posts the sends and receives, runs the
// collectives in call order, waits for all, and checks what each receive got.
void run_mpi(const std::vector<Op>& ops) {
  auto check = [](const Op& op, int rc, const char* fn) {
    if (rc != MPI_SUCCESS) fail(fmt::format("{}: {} failed: {}", op.name, fn, mpi_error(rc)));
  };
  std::vector<MPI_Request> reqs;
  std::vector<const Op*> req_op;
  for (const Op& op : ops) {
    const int n = static_cast<int>(op.bytes());
    MPI_Request r;
    if (op.kind == Kind::Send) check(op, MPI_Isend(op.send, n, MPI_BYTE, op.peer, 0, op.comm->mpi, &r), "MPI_Isend");
    if (op.kind == Kind::Recv) check(op, MPI_Irecv(op.recv, n, MPI_BYTE, op.peer, 0, op.comm->mpi, &r), "MPI_Irecv");
    if (op.kind == Kind::Send || op.kind == Kind::Recv) reqs.push_back(r), req_op.push_back(&op);
  }
  static MPI_Op bf16_op = MPI_OP_NULL;
  for (const Op& op : ops) {
    if (op.kind == Kind::AllReduce) {
      const MPI_Datatype t = op.type == ncclFloat32   ? MPI_FLOAT
                             : op.type == ncclFloat64 ? MPI_DOUBLE
                             : op.type == ncclInt32   ? MPI_INT
                                                      : MPI_UINT16_T;
      if (op.type == ncclBfloat16 && bf16_op == MPI_OP_NULL) MPI_Op_create(bf16_sum, /*commute=*/1, &bf16_op);
      const void* in = op.send == op.recv ? MPI_IN_PLACE : op.send;
      const int n = static_cast<int>(op.count);
      check(op, MPI_Allreduce(in, op.recv, n, t, op.type == ncclBfloat16 ? bf16_op : MPI_SUM, op.comm->mpi),
            "MPI_Allreduce");
    } else if (op.kind == Kind::Broadcast) {
      if (op.is_root() && op.send != op.recv) std::memmove(op.recv, op.send, op.bytes());
      check(op, MPI_Bcast(op.recv, static_cast<int>(op.bytes()), MPI_BYTE, op.peer, op.comm->mpi), "MPI_Bcast");
    }
  }
  std::vector<MPI_Status> st(reqs.size());
  const int rc = MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), st.data());
  if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) fail(fmt::format("ncclGroupEnd: MPI_Waitall: {}", mpi_error(rc)));
  for (size_t i = 0; i < reqs.size(); ++i) {
    const Op& op = *req_op[i];
    if (rc == MPI_ERR_IN_STATUS && st[i].MPI_ERROR != MPI_SUCCESS) {
      fail(fmt::format("{} of {} elements {} rank {}: {} (the peer's {} has another count or datatype?)", op.name,
                       op.count, op.kind == Kind::Send ? "to" : "from", op.peer, mpi_error(st[i].MPI_ERROR),
                       op.kind == Kind::Send ? "ncclRecv" : "ncclSend"));
    }
    int got = 0;
    if (op.kind == Kind::Recv && (MPI_Get_count(&st[i], MPI_BYTE, &got), size_t(got) != op.bytes())) {
      fail(
          fmt::format("ncclRecv of {} elements ({} bytes) from rank {} received {} bytes: the peer's ncclSend has "
                      "another count or datatype",
                      op.count, op.bytes(), op.peer, got));
    }
  }
}

// Without MPI (one rank), the i-th send to itself meets the i-th receive of the group.
std::vector<std::pair<size_t, size_t>> self_pairs(const std::vector<Op>& ops) {
  std::vector<size_t> sends, recvs;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind == Kind::Send) sends.push_back(i);
    if (ops[i].kind == Kind::Recv) recvs.push_back(i);
  }
  if (sends.size() != recvs.size()) {
    fail(
        fmt::format("ncclGroupEnd: {} ncclSend and {} ncclRecv to and from rank 0 (itself) in the group: an "
                    "unmatched one never completes",
                    sends.size(), recvs.size()));
  }
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t i = 0; i < sends.size(); ++i) {
    if (ops[sends[i]].bytes() != ops[recvs[i]].bytes()) {
      fail(fmt::format("ncclGroupEnd: ncclSend #{} to itself sends {} bytes, its ncclRecv expects {}", i + 1,
                       ops[sends[i]].bytes(), ops[recvs[i]].bytes()));
    }
    pairs.emplace_back(sends[i], recvs[i]);
  }
  return pairs;
}

// ncclGroupEnd's work: one operation on the group's stream, which checks every buffer first.
void flush_group() {
  std::vector<Op> ops = std::move(t_group);
  t_group.clear();
  if (ops.empty()) return;
  const cudaStream_t stream = ops.front().stream;
  for (const Op& op : ops) {
    if (op.stream != stream) {
      fail(
          fmt::format("ncclGroupEnd: the group's calls use streams {} and {} ({}); the simulator runs a group on one "
                      "stream",
                      static_cast<void*>(stream), static_cast<void*>(op.stream), op.name));
    }
  }
  const bool local = ops.front().comm->mpi == MPI_COMM_NULL;
  auto pairs = local ? self_pairs(ops) : std::vector<std::pair<size_t, size_t>>{};
  const char* name = ops.size() == 1 ? ops.front().name : "ncclGroupEnd";
  am::sim::enqueue(
      stream, name,
      [ops = std::move(ops), local, pairs = std::move(pairs)] {
        for (const Op& op : ops) {
          const bool reads = op.kind == Kind::AllReduce || op.kind == Kind::Send || op.is_root();
          const bool writes = op.kind == Kind::AllReduce || op.kind == Kind::Recv ||
                              (op.kind == Kind::Broadcast && (!op.is_root() || op.send != op.recv));
          if (reads) am::sim::runtime_access(op.send, op.bytes(), false, true, op.name);
          if (writes) am::sim::runtime_access(op.recv, op.bytes(), true, false, op.name);
        }
        am::sim::ArenaOpen open;
        if (!local) return run_mpi(ops);
        for (const Op& op : ops) {  // one rank: a collective is a copy
          if ((op.kind == Kind::AllReduce || op.kind == Kind::Broadcast) && op.send != op.recv) {
            std::memmove(op.recv, op.send, op.bytes());
          }
        }
        for (auto [s, r] : pairs) std::memmove(ops[r].recv, ops[s].send, ops[s].bytes());
      },
      /*counted=*/true, /*at_once=*/true);
}

void check_device(const Op& op, const void* p, const char* arg) {
  if (op.count > 0 && !am::sim::in_arena(p)) {
    fail(fmt::format("{}: {} {} is {}; NCCL moves device buffers", op.name, arg, p, p ? "host memory" : "null"));
  }
}

// Checks a call's arguments and queues it (runs it at once outside a group).
ncclResult_t add_op(ncclComm_t handle, Op op, ncclRedOp_t red = ncclSum) {
  op.comm = find_comm(handle);
  if (!op.comm) return invalid("{}: comm {} is not a live communicator", op.name, fmt::ptr(handle));
  const size_t es = type_size(op.type);
  if (es == 0) return invalid("{}: datatype {} is not a NCCL datatype", op.name, int(op.type));
  if (op.kind == Kind::AllReduce && red != ncclSum) {
    return invalid("ncclAllReduce: op {}: the simulator has ncclSum only", int(red));
  }
  if (op.kind == Kind::AllReduce && op.type != ncclFloat32 && op.type != ncclFloat64 && op.type != ncclInt32 &&
      op.type != ncclBfloat16) {
    return invalid("ncclAllReduce: datatype {}: the simulator sums f32, f64, i32 and bf16", int(op.type));
  }
  if (op.count > size_t(INT_MAX) / es) {
    return invalid("{}: {} elements: the MPI underneath moves {} bytes at most", op.name, op.count, INT_MAX);
  }
  if (op.peer < 0 || op.peer >= op.comm->size) {
    return invalid("{}: {} {} is not a rank of the communicator (size {})", op.name,
                   op.kind == Kind::Broadcast ? "root" : "peer", op.peer, op.comm->size);
  }
  const auto s = reinterpret_cast<uintptr_t>(op.send), r = reinterpret_cast<uintptr_t>(op.recv);
  if (op.kind == Kind::AllReduce && op.count > 0 && s != r && s < r + op.bytes() && r < s + op.bytes()) {
    return invalid("ncclAllReduce: sendbuff and recvbuff overlap without being equal");
  }
  if (op.kind == Kind::AllReduce || op.kind == Kind::Send || op.is_root()) check_device(op, op.send, "sendbuff");
  if (op.kind != Kind::Send) check_device(op, op.recv, "recvbuff");
  t_group.push_back(std::move(op));
  if (t_depth == 0) flush_group();
  return ncclSuccess;
}

}  // namespace

extern "C" {

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess:
      return "no error";
    case ncclUnhandledCudaError:
      return "unhandled cuda error";
    case ncclSystemError:
      return "unhandled system error (MPI underneath the simulator's NCCL)";
    case ncclInternalError:
      return "internal error";
    case ncclInvalidArgument:
      return "invalid argument (see the message above)";
    case ncclInvalidUsage:
      return "invalid usage";
    case ncclRemoteError:
      return "remote process exited or there was a network error";
    case ncclInProgress:
      return "NCCL operation in progress";
    default:
      return "unknown result code";
  }
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  static std::atomic<uint64_t> counter{0};
  std::memset(id->internal, 0, sizeof id->internal);
  const uint64_t parts[3] = {uint64_t(getpid()), uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()),
                             ++counter};
  std::snprintf(id->internal, 16, "am-sim-nccl");
  std::memcpy(id->internal + 16, parts, sizeof parts);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  *comm = nullptr;
  if (nranks < 1 || rank < 0 || rank >= nranks) return invalid("ncclCommInitRank: rank {} of {}", rank, nranks);
  if (!mpi_up()) {
    if (nranks != 1) return invalid("ncclCommInitRank: {} ranks, but MPI is not running (mpirun)", nranks);
    *comm = add_comm(std::make_shared<ncclComm>());
    return ncclSuccess;
  }
  uint32_t h = 2166136261u;  // FNV-1a of the id: the same id, the same color
  for (char c : id.internal) h = (h ^ uint8_t(c)) * 16777619u;
  MPI_Comm split = MPI_COMM_NULL;
  if (MPI_Comm_split(MPI_COMM_WORLD, int(h & 0x7fffffffu), rank, &split) != MPI_SUCCESS) return ncclSystemError;
  int size = 0, r = 0;
  MPI_Comm_size(split, &size);
  MPI_Comm_rank(split, &r);
  if (size != nranks || r != rank) {
    MPI_Comm_free(&split);
    return invalid(
        "ncclCommInitRank: {} processes of MPI_COMM_WORLD hold this id, this one as rank {}; the call "
        "asked for rank {} of {} (every world rank must call it, with the id rank 0 made)",
        size, r, rank, nranks);
  }
  return make_comm(split, comm);
}

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, ncclConfig_t* config) {
  *newcomm = nullptr;
  const CommPtr c = find_comm(comm);
  if (!c) return invalid("ncclCommSplit: comm {} is not a live communicator", fmt::ptr(comm));
  if (color < 0 && color != NCCL_SPLIT_NOCOLOR) return invalid("ncclCommSplit: color {}", color);
  if (c->host == MPI_COMM_NULL) {  // one rank, no MPI
    if (color >= 0) *newcomm = add_comm(std::make_shared<ncclComm>());
    return ncclSuccess;
  }
  MPI_Comm split = MPI_COMM_NULL;
  if (MPI_Comm_split(c->host, color < 0 ? MPI_UNDEFINED : color, key, &split) != MPI_SUCCESS) return ncclSystemError;
  if (split == MPI_COMM_NULL) return ncclSuccess;
  return make_comm(split, newcomm);
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclSuccess;
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_comms.erase(comm)) return ncclSuccess;
  return invalid("ncclCommDestroy: comm {} is not a live communicator", fmt::ptr(comm));
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  return add_op(comm, Op{Kind::AllReduce, "ncclAllReduce", sendbuff, recvbuff, count, datatype, 0, stream, {}}, op);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  return add_op(comm, Op{Kind::Broadcast, "ncclBroadcast", sendbuff, recvbuff, count, datatype, root, stream, {}});
}

ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return add_op(comm, Op{Kind::Send, "ncclSend", sendbuff, nullptr, count, datatype, peer, stream, {}});
}

ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return add_op(comm, Op{Kind::Recv, "ncclRecv", nullptr, recvbuff, count, datatype, peer, stream, {}});
}

ncclResult_t ncclGroupStart() { return ++t_depth, ncclSuccess; }

ncclResult_t ncclGroupEnd() {
  if (t_depth == 0) return invalid("ncclGroupEnd without ncclGroupStart"), ncclInvalidUsage;
  if (--t_depth == 0) flush_group();
  return ncclSuccess;
}

}  // extern "C"

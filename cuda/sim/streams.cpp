// Streams, events and operations of the simulator (the device and memory API: device_api.cpp).
//
// Every operation (kernel, copy, memset, library call) is queued on a stream and gets an id and
// a vector clock: known[s] is the last operation of stream s it is ordered after (its own stream's
// earlier operations, the events it waited for, what the host had synchronised with when it was
// queued, and the legacy default stream's implicit ordering with blocking streams). The memory
// checker compares a reader's clock with the last writer of each word, so reading or writing a
// buffer last written on another stream without an event wait in between is an error that names
// both operations, whatever order the operations ran in.
//
// When they run: eagerly (AM_SIM_STREAMS=eager, the default: each operation as it is queued) or
// lazily (lazy: as late as the host's synchronisations allow, each stream's queue run only when
// something waits for it: the adversarial order, in which a missing wait changes results). A
// collective (nccl.cpp) runs when queued in both modes, after the operations it is ordered after:
// a GPU runs it on its own, whatever the host does next, so every rank must reach it in program
// order (deferred, one rank could wait in it while its peer waits in a host-side MPI call).
#include "sim_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

struct CUstream_st {
  int id = 0;
};
struct CUevent_st {
  int stream = -1;  // -1: never recorded
  uint64_t clock = 0;
  std::vector<uint64_t> known;
};

namespace am::sim {
namespace {

struct PendingOp {
  uint32_t id = 0;
  uint64_t clock = 0;
  std::vector<uint64_t> known;
  const char* name = "";
  std::function<void()> fn;
};

struct StreamState {
  int id = 0;
  bool blocking = true;
  bool destroyed = false;
  uint64_t clock = 0;  // operations queued so far
  uint64_t done = 0;   // operations run so far
  std::vector<uint64_t> known;
  std::deque<PendingOp> pending;
  std::unique_ptr<CUstream_st> handle;
};

struct Runtime {
  std::vector<std::unique_ptr<StreamState>> streams;
  std::vector<uint64_t> host_known;   // what the host has synchronised with
  std::vector<OpInfo> ops{OpInfo{}};  // ops[0]: "never written"
  Counters counters;
  Settings settings;
  cudaError_t last_error = cudaSuccess;
  std::recursive_mutex mu;

  Runtime() {
    auto s0 = std::make_unique<StreamState>();
    s0->handle = std::make_unique<CUstream_st>();
    streams.push_back(std::move(s0));
    resize_clocks();
    if (const char* v = std::getenv("AM_SIM_SCHEDULE"); v && *v) settings.schedule = parse_schedule(v);
    if (const char* v = std::getenv("AM_SIM_RACECHECK"); v && *v && std::strcmp(v, "off") != 0) {
      settings.racecheck = true;
      settings.racecheck_schedule = parse_schedule(v);
    }
    if (const char* v = std::getenv("AM_SIM_SHARED_CHECKS"); v && std::strcmp(v, "0") == 0)
      settings.shared_checks = false;
    if (const char* v = std::getenv("AM_SIM_STREAMS"); v && *v) {
      if (std::strcmp(v, "lazy") == 0) {
        settings.lazy_streams = true;
      } else if (std::strcmp(v, "eager") != 0) {
        fail(fmt::format("AM_SIM_STREAMS={}: expected eager or lazy", v));
      }
    }
  }
  void resize_clocks() {
    const size_t n = streams.size();
    host_known.resize(n, 0);
    for (auto& s : streams) s->known.resize(n, 0);
  }
  StreamState& state(cudaStream_t s) {
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return *streams[0];
    const int id = s->id;
    if (id <= 0 || id >= int(streams.size()) || streams[id]->destroyed) {
      fail(fmt::format("stream {} is not a live stream (destroyed, or never created)", static_cast<void*>(s)));
    }
    return *streams[id];
  }
};

Runtime& rt() {
  static Runtime* r = new Runtime();  // never destroyed (work may be queued from static destructors)
  return *r;
}

thread_local CurrentOp* t_current = nullptr;

void merge(std::vector<uint64_t>& into, const std::vector<uint64_t>& from) {
  if (into.size() < from.size()) into.resize(from.size(), 0);
  for (size_t i = 0; i < from.size(); ++i) into[i] = std::max(into[i], from[i]);
}

void run_op(StreamState& s, PendingOp& op) {
  CurrentOp cur{op.id, s.id, op.name, op.known};
  CurrentOp* saved = t_current;
  t_current = &cur;
  struct Restore {
    CurrentOp* saved;
    ~Restore() { t_current = saved; }
  } restore{saved};
  op.fn();
  s.done = op.clock;
}

// What a new operation (or event) on s is ordered after besides s's own work: what the host has
// synchronised with, and the legacy default stream's implicit ordering with blocking streams
// (with what their work was ordered after: an event stream 0 waited for orders a blocking
// stream's later work too).
void order_implicitly(StreamState& s) {
  Runtime& r = rt();
  merge(s.known, r.host_known);
  if (s.id == 0) {
    for (auto& b : r.streams) {
      if (b->id != 0 && b->blocking && !b->destroyed) {
        merge(s.known, b->known);
        s.known[b->id] = std::max(s.known[b->id], b->clock);
      }
    }
  } else if (s.blocking) {
    merge(s.known, r.streams[0]->known);
    s.known[0] = std::max(s.known[0], r.streams[0]->clock);
  }
}

// Runs stream s's queued operations up to `clock`, each after those it is ordered after.
void drain(StreamState& s, uint64_t clock) {
  Runtime& r = rt();
  while (!s.pending.empty() && s.pending.front().clock <= clock) {
    PendingOp op = std::move(s.pending.front());
    s.pending.pop_front();
    for (size_t j = 0; j < op.known.size(); ++j) {
      if (int(j) != s.id && op.known[j] > r.streams[j]->done) drain(*r.streams[j], op.known[j]);
    }
    run_op(s, op);
  }
}

// The host waits for stream s (and learns what s knew).
void host_sync(StreamState& s) {
  Runtime& r = rt();
  drain(s, s.clock);
  merge(r.host_known, s.known);
  r.host_known[s.id] = std::max(r.host_known[s.id], s.clock);
}

// A stream the host has already waited for, with nothing queued on it since, makes the host wait
// for nothing: on a GPU the call returns at once, so it is not counted as a synchronisation (a
// download is a copy on the compute stream that waits for it, then this call: one count).
bool host_waited_for(const StreamState& s) { return rt().host_known[s.id] >= s.clock; }

}  // namespace

void drain_all() {
  Runtime& r = rt();
  for (auto& s : r.streams) drain(*s, s->clock);
}

// The legacy default stream: the host's synchronous calls wait for it and for blocking streams.
void host_sync_legacy() {
  Runtime& r = rt();
  for (auto& s : r.streams) {
    if (s->id == 0 || (s->blocking && !s->destroyed)) host_sync(*s);
  }
}

void host_sync_stream(cudaStream_t stream) {
  StreamState& s = rt().state(stream);
  if (s.id == 0) {
    host_sync_legacy();
  } else {
    host_sync(s);
  }
}

std::string Schedule::name() const {
  switch (order) {
    case Ascending:
      return "asc";
    case Descending:
      return "desc";
    case WarpReversed:
      return "warprev";
    case Random:
      return fmt::format("random:{}", seed);
  }
  return "?";
}

Schedule parse_schedule(const std::string& text) {
  Schedule s;
  if (text == "asc") {
    s.order = Schedule::Ascending;
  } else if (text == "desc") {
    s.order = Schedule::Descending;
  } else if (text == "warprev") {
    s.order = Schedule::WarpReversed;
  } else if (text == "random" || text.rfind("random:", 0) == 0) {
    s.order = Schedule::Random;
    if (text.size() > 7) {
      char* end = nullptr;
      s.seed = std::strtoull(text.c_str() + 7, &end, 10);
      if (*end != '\0') throw SimError(fmt::format("schedule '{}': the seed must be an integer", text));
    }
  } else {
    throw SimError(fmt::format("unknown schedule '{}' (valid: asc, desc, warprev, random, random:SEED)", text));
  }
  return s;
}

Settings& settings() { return rt().settings; }
const Counters& counters() { return rt().counters; }
void reset_counters() {
  rt().counters = Counters{};
  rt().counters.peak_device_bytes = device_bytes_in_use();
}

void fail(const std::string& msg) {
  std::fprintf(stderr, "[cuda-sim] error: %s\n", msg.c_str());
  std::fflush(stderr);
  throw SimError(msg);
}

const CurrentOp* current_op() { return t_current; }
const OpInfo& op_info(uint32_t id) { return rt().ops[id]; }
void set_last_error(cudaError_t e) { rt().last_error = e; }
cudaError_t last_error(bool clear) {
  const cudaError_t e = rt().last_error;
  if (clear) rt().last_error = cudaSuccess;
  return e;
}
Counters& mutable_counters() { return rt().counters; }

void enqueue(cudaStream_t stream, const char* name, std::function<void()> fn, bool counted, bool at_once) {
  Runtime& r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  StreamState& s = r.state(stream);
  order_implicitly(s);
  PendingOp op;
  op.clock = ++s.clock;
  s.known[s.id] = op.clock;
  op.id = static_cast<uint32_t>(r.ops.size());
  r.ops.push_back(OpInfo{s.id, op.clock, name});
  op.known = s.known;
  op.name = name;
  op.fn = std::move(fn);
  if (counted) ++r.counters.launches;
  if (s.id == 0) ++r.counters.legacy_stream_ops;
  if (r.settings.lazy_streams) {
    const uint64_t clock = op.clock;
    s.pending.push_back(std::move(op));
    if (at_once) drain(s, clock);  // with what it is ordered after
  } else {
    run_op(s, op);
  }
}

void runtime_access(const void* p, size_t bytes, bool write, bool require_init, const char* what) {
  if (bytes == 0) return;
  const CurrentOp* cur = current_op();
  const Allocation* al = find_allocation(p);
  if (!al || al->freed || !al->live) {
    fail(fmt::format("{} {} {} bytes at {}: {}", what, write ? "writes" : "reads", bytes, p, describe_address(p)));
  }
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a + bytes > al->base + al->logical) {
    fail(fmt::format("{} {} {} bytes at {} of device allocation #{} of {} bytes: {} bytes past its end", what,
                     write ? "writes" : "reads", bytes, describe_address(p), al->id, al->logical,
                     a + bytes - (al->base + al->logical)));
  }
  Shadow* s = shadow_of(p);
  Shadow* e = shadow_of(static_cast<const char*>(p) + bytes - 1) + 1;
  for (Shadow* w = s; w != e; ++w) {
    if (w->op == 0) {
      if (require_init) {
        const uintptr_t word = (a & ~uintptr_t(3)) + static_cast<uintptr_t>(w - s) * 4;
        fail(fmt::format("{} reads device memory never written: {}", what,
                         describe_address(reinterpret_cast<const void*>(word))));
      }
      continue;
    }
    if (!cur) continue;
    const OpInfo& wi = op_info(w->op);
    if (wi.stream != cur->stream && (size_t(wi.stream) >= cur->known.size() || cur->known[wi.stream] < wi.clock)) {
      fail(
          fmt::format("{} on stream {} {} {} last written by {} on stream {} with no event wait or "
                      "synchronisation in between (cudaStreamWaitEvent missing?)",
                      what, cur->stream, write ? "overwrites" : "reads", describe_address(p), wi.name, wi.stream));
    }
  }
  if (write && cur) {
    for (Shadow* w = s; w != e; ++w) *w = Shadow{cur->id, 0};
  }
}

}  // namespace am::sim

using namespace am::sim;

extern "C" {

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  Runtime& r = rt();
  auto s = std::make_unique<StreamState>();
  s->id = static_cast<int>(r.streams.size());
  s->blocking = (flags & cudaStreamNonBlocking) == 0;
  s->handle = std::make_unique<CUstream_st>();
  s->handle->id = s->id;
  *stream = s->handle.get();
  r.streams.push_back(std::move(s));
  r.resize_clocks();
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  StreamState& s = rt().state(stream);
  if (s.id == 0) return cudaErrorInvalidResourceHandle;
  drain(s, s.clock);  // queued work still completes
  s.destroyed = true;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Runtime& r = rt();
  StreamState& s = r.state(stream);
  bool idle = host_waited_for(s);
  if (s.id == 0) {
    for (auto& b : r.streams) {
      if (b->blocking && !b->destroyed) idle = idle && host_waited_for(*b);
    }
  }
  if (!idle) ++r.counters.sync_stream;
  host_sync_stream(stream);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  Runtime& r = rt();
  ++r.counters.sync_device;
  drain_all();
  for (auto& s : r.streams) host_sync(*s);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Runtime& r = rt();
  StreamState& s = r.state(stream);
  // The event completes after everything queued on s so far (and what s is ordered after): a
  // record is a stream operation, with the same implicit ordering.
  order_implicitly(s);
  event->stream = s.id;
  event->clock = s.clock;
  event->known = s.known;
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  if (event->stream < 0) return cudaSuccess;  // never recorded: nothing to wait for
  StreamState& s = rt().state(stream);
  merge(s.known, event->known);
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Runtime& r = rt();
  ++r.counters.sync_event;
  if (event->stream < 0) return cudaSuccess;
  drain(*r.streams[event->stream], event->clock);
  for (size_t j = 0; j < event->known.size(); ++j) drain(*r.streams[j], event->known[j]);
  merge(r.host_known, event->known);
  return cudaSuccess;
}

}  // extern "C"

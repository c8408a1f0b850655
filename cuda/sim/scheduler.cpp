// Running a grid: its blocks one after another (in the schedule's block order), and in each block
// its threads as fibers (Boost.Context). A fiber runs until it reaches __syncthreads or a warp
// collective, or returns. When no thread can run:
//  - each warp collective whose lanes (its mask) have all arrived, with the same op and mask,
//    completes and its lanes run again; a lane of the mask waiting elsewhere, exited or missing is
//    an error;
//  - otherwise, when every live thread waits at __syncthreads, the barrier opens; a thread that
//    exited while others wait there is an error.
// Between these points threads run in the schedule's order (ascending, descending, warp-reversed
// or a seeded random permutation drawn afresh each time), so a missing barrier changes results
// under some schedule; AM_SIM_RACECHECK runs every launch under two schedules and compares.
#include "memcheck.h"
#include "sim_internal.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <boost/context/fiber.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <numeric>
#include <random>

namespace am::sim {
namespace {

namespace bc = boost::context;

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync:
      return "__syncwarp";
    case WarpOp::ShflIdx:
      return "__shfl_sync";
    case WarpOp::ShflXor:
      return "__shfl_xor_sync";
    case WarpOp::ShflUp:
      return "__shfl_up_sync";
    case WarpOp::ShflDown:
      return "__shfl_down_sync";
    case WarpOp::Ballot:
      return "__ballot_sync";
    case WarpOp::Any:
      return "__any_sync";
    case WarpOp::All:
      return "__all_sync";
    case WarpOp::Mma:
      return "mma.sync.m16n8k16";
  }
  return "?";
}

// Fiber stacks, reused from block to block (a guard page below each).
struct StackPool {
  std::vector<char*> stacks;
  char* get(size_t i) {
    while (stacks.size() <= i) {
      void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) fail("cannot map a fiber stack");
      mprotect(p, kGuardBytes, PROT_NONE);
      stacks.push_back(static_cast<char*>(p) + kGuardBytes);
    }
    return stacks[i];
  }
};
thread_local StackPool t_stacks;

struct NoDealloc {
  bc::stack_context allocate() { return {}; }
  void deallocate(bc::stack_context&) noexcept {}
};

enum class State : uint8_t { Runnable, AtBarrier, AtWarp, Done };

struct Block;

struct Thread {
  KernelContext ctx;  // first: memcheck's view
  Block* block = nullptr;
  State state = State::Runnable;
  bc::fiber fiber;
  bc::fiber sched;
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
  std::exception_ptr error;
};

struct Block {
  const LaunchRequest* req = nullptr;
  uint3 idx{};
  std::vector<Thread> threads;
  std::vector<SharedObject> shared;
  char* dynamic = nullptr;
  uint32_t epoch = 0;                 // barriers passed (the shared-memory race check)
  std::vector<uint32_t> warp_epochs;  // per thread: __syncwarp calls passed
};

thread_local Thread* t_thread = nullptr;

Thread& current_thread(const char* what) {
  if (!t_thread) fail(fmt::format("{} called outside a kernel", what));
  return *t_thread;
}

void yield(Thread& t) { t.sched = std::move(t.sched).resume(); }

std::string thread_name(const Block& b, int tid) {
  const dim3 bd = b.req->block;
  return fmt::format("thread ({},{},{})", tid % bd.x, (tid / bd.x) % bd.y, tid / (bd.x * bd.y));
}

std::string where(const Block& b, int tid = -1) {
  std::string s = fmt::format("kernel {} block ({},{},{})", b.req->kernel, b.idx.x, b.idx.y, b.idx.z);
  if (tid >= 0) s += fmt::format(" {}", thread_name(b, tid));
  return s;
}

std::vector<int> thread_order(const Schedule& sch, int n, std::mt19937_64& rng) {
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  switch (sch.order) {
    case Schedule::Ascending:
      break;
    case Schedule::Descending:
      std::reverse(order.begin(), order.end());
      break;
    case Schedule::WarpReversed:
      for (int w = 0; w < n; w += 32) std::reverse(order.begin() + w, order.begin() + std::min(n, w + 32));
      break;
    case Schedule::Random:
      std::shuffle(order.begin(), order.end(), rng);
      break;
  }
  return order;
}

// Checks the collective that lane l waits in against the other lanes of its mask, in the warp
// that starts at thread w and has `lanes` lanes; true when all of them wait in it. A lane of the
// mask that waits elsewhere, has exited or does not exist is an error.
bool warp_lanes_arrived(const Block& b, int w, int lanes, int l) {
  const Thread& t = b.threads[w + l];
  const unsigned m = t.mask;
  if (!(m & (1u << l))) {
    fail(fmt::format("{}: {} with mask {:#010x}, which does not include the calling lane {}", where(b, w + l),
                     op_name(t.op), m, l));
  }
  bool ready = true;
  for (int j = 0; j < 32; ++j) {
    if (!(m & (1u << j))) continue;
    if (j >= lanes) {
      fail(
          fmt::format("{}: {} with mask {:#010x} names lane {}, which does not exist (the block's last warp has "
                      "{} lanes)",
                      where(b, w + l), op_name(t.op), m, j, lanes));
    }
    const Thread& u = b.threads[w + j];
    if (u.state == State::AtWarp && (u.mask != m || u.op != t.op)) {
      fail(fmt::format("{}: lane {} calls {} with mask {:#010x} while lane {} waits in {} with mask {:#010x}",
                       where(b, w + l), l, op_name(t.op), m, j, op_name(u.op), u.mask));
    }
    if (u.state == State::Done || u.state == State::AtBarrier) {
      fail(fmt::format("{}: lane {} calls {} with mask {:#010x}, but lane {} {}", where(b, w + l), l, op_name(t.op), m,
                       j, u.state == State::Done ? "has exited" : "waits at __syncthreads"));
    }
    if (u.state != State::AtWarp) ready = false;
  }
  return ready;
}

// mma.sync of warp w, which needs all 32 lanes; each lane's value holds its MmaLane pointer.
void run_warp_mma(Block& b, int w, int lanes, int l) {
  const unsigned m = b.threads[w + l].mask;
  if (lanes != 32 || m != 0xffffffffu) {
    fail(
        fmt::format("{}: mma.sync.m16n8k16 needs the whole warp (mask {:#010x}, {} lanes)", where(b, w + l), m, lanes));
  }
  const MmaLane* ops[32];
  for (int j = 0; j < 32; ++j) std::memcpy(&ops[j], &b.threads[w + j].value, sizeof(ops[j]));
  mma_bf16_m16n8k16_warp(ops);
}

// The lane that lane j reads in a shuffle (itself when the shuffle leaves its segment of the
// warp; j for the collectives that are not shuffles).
int shuffle_source(const Thread& u, int j) {
  const int width = u.width, seg = j & ~(width - 1);
  int src = j;
  switch (u.op) {
    case WarpOp::ShflIdx:
      src = seg + (u.arg & (width - 1));
      break;
    case WarpOp::ShflXor:
      src = j ^ u.arg;
      if (src >= seg + width) src = j;
      break;
    case WarpOp::ShflUp:
      src = j - u.arg;
      if (src < seg) src = j;
      break;
    case WarpOp::ShflDown:
      src = j + u.arg;
      if (src >= seg + width) src = j;
      break;
    default:
      break;
  }
  return src;
}

// Gives each lane of mask m in warp w its result: the vote (bit j: lane j's value is nonzero) for
// the votes, the source lane's value for the shuffles.
void give_warp_results(Block& b, int w, int lanes, unsigned m) {
  uint64_t vote = 0;
  for (int j = 0; j < lanes; ++j) {
    if ((m & (1u << j)) && b.threads[w + j].value != 0) vote |= 1ull << j;
  }
  for (int j = 0; j < lanes; ++j) {
    if (!(m & (1u << j))) continue;
    Thread& u = b.threads[w + j];
    const int src = shuffle_source(u, j);
    switch (u.op) {
      case WarpOp::Sync:
        u.result = 0;
        break;
      case WarpOp::Ballot:
        u.result = vote;
        break;
      case WarpOp::Any:
        u.result = vote != 0;
        break;
      case WarpOp::All:
        u.result = (vote & m) == m;
        break;
      default:
        if (src < 0 || src >= lanes || !(m & (1u << src))) {
          fail(fmt::format("{}: {} on lane {} reads lane {}, which is not in the mask {:#010x}", where(b, w + j),
                           op_name(u.op), j, src, m));
        }
        u.result = b.threads[w + src].value;
    }
  }
}

// Completes the collective that lane l of warp w waits in (all its lanes have arrived) and lets
// the lanes of its mask run again.
void complete_warp_collective(Block& b, int w, int lanes, int l) {
  const Thread& t = b.threads[w + l];
  const unsigned m = t.mask;
  if (t.op == WarpOp::Mma) run_warp_mma(b, w, lanes, l);
  give_warp_results(b, w, lanes, m);
  for (int j = 0; j < lanes; ++j) {
    if (m & (1u << j)) {
      b.threads[w + j].state = State::Runnable;
      if (t.op == WarpOp::Sync) ++b.warp_epochs[w + j];
    }
  }
}

// Completes the warp collectives whose lanes have all arrived; true when any did.
bool resolve_warps(Block& b) {
  bool progressed = false;
  const int n = static_cast<int>(b.threads.size());
  for (int w = 0; w < n; w += 32) {
    const int lanes = std::min(32, n - w);
    for (int l = 0; l < lanes; ++l) {
      if (b.threads[w + l].state != State::AtWarp) continue;
      if (!warp_lanes_arrived(b, w, lanes, l)) continue;
      complete_warp_collective(b, w, lanes, l);
      progressed = true;
    }
  }
  return progressed;
}

// Thread i of block b, ready to run as a fiber on the i-th pooled stack.
void start_thread(Block& b, int i) {
  const LaunchRequest& req = *b.req;
  Thread& t = b.threads[i];
  t.block = &b;
  t.ctx.thread = uint3{unsigned(i % req.block.x), unsigned((i / req.block.x) % req.block.y),
                       unsigned(i / (req.block.x * req.block.y))};
  t.ctx.block = b.idx;
  t.ctx.linear_thread = i;
  t.ctx.req = &req;
  t.ctx.shared = &b.shared;
  t.ctx.block_epoch = &b.epoch;
  t.ctx.warp_epochs = b.warp_epochs.data();
  t.ctx.block_tag = 1 + b.idx.x + req.grid.x * (b.idx.y + req.grid.y * b.idx.z);
  char* stack = t_stacks.get(i);
  t.ctx.stack_lo = reinterpret_cast<uintptr_t>(stack);
  t.ctx.stack_size = kStackBytes;
  bc::stack_context sctx;
  sctx.sp = stack + kStackBytes;
  sctx.size = kStackBytes;
  Thread* tp = &t;
  t.fiber =
      bc::fiber(std::allocator_arg, bc::preallocated(sctx.sp, sctx.size, sctx), NoDealloc{}, [tp](bc::fiber&& sched) {
        tp->sched = std::move(sched);
        try {
          tp->ctx.req->thread_body(tp->ctx.req->storage_begin);
        } catch (const bc::detail::forced_unwind&) {
          throw;
        } catch (...) {
          tp->error = std::current_exception();
        }
        tp->state = State::Done;
        return std::move(tp->sched);
      });
}

// Makes dyn (poisoned: it starts as NaN / -1) block b's dynamic shared memory, its only shared
// object until the threads declare static ones.
void share_dynamic(Block& b, std::vector<char>& dyn) {
  std::memset(dyn.data(), 0xff, dyn.size());
  b.dynamic = dyn.data();
  b.shared.clear();
  b.shared.emplace_back(SharedObject{dyn.data(), b.req->smem, "dynamic shared memory", nullptr, false});
}

// Ends a failed block: unwinds its suspended fibers, then throws e.
[[noreturn]] void abort_block(Block& b, std::exception_ptr e) {
  for (Thread& t : b.threads) t.fiber = bc::fiber();  // unwinds suspended fibers
  std::rethrow_exception(e);
}

// One round: each runnable thread, in `order`, runs until it waits or returns; true when any ran.
bool run_round(Block& b, const std::vector<int>& order) {
  bool ran = false;
  for (int i : order) {
    Thread& t = b.threads[i];
    if (t.state != State::Runnable) continue;
    t_thread = &t;
    memcheck_enter(&t.ctx);
    t.fiber = std::move(t.fiber).resume();
    memcheck_enter(nullptr);
    t_thread = nullptr;
    ran = true;
    if (t.error) abort_block(b, t.error);
  }
  return ran;
}

// When no thread can run and no collective completes: opens the barrier every live thread waits
// at (true), or finds that every thread returned (false). A thread that exited while others wait
// at the barrier is an error.
bool open_barrier(Block& b) {
  const int n = static_cast<int>(b.threads.size());
  int at_barrier = 0, done = 0, first_done = -1, first_waiting = -1;
  for (int i = 0; i < n; ++i) {
    if (b.threads[i].state == State::AtBarrier) {
      ++at_barrier;
      if (first_waiting < 0) first_waiting = i;
    } else if (b.threads[i].state == State::Done) {
      ++done;
      if (first_done < 0) first_done = i;
    }
  }
  if (at_barrier == 0) return false;  // every thread returned
  if (done > 0) {
    try {
      fail(fmt::format("{}: __syncthreads reached by {} of {} threads; {} has exited without reaching it", where(b),
                       at_barrier, n, thread_name(b, first_done)));
    } catch (...) {
      abort_block(b, std::current_exception());
    }
  }
  for (Thread& t : b.threads) t.state = State::Runnable;
  ++b.epoch;
  return true;
}

// Runs block b to its end: a round of its runnable threads, then the warp collectives that can
// complete, then (when neither made progress) its barrier, until every thread has returned.
void run_block(Block& b, const Schedule& sch, std::mt19937_64& rng) {
  const LaunchRequest& req = *b.req;
  const int n = static_cast<int>(req.block.x * req.block.y * req.block.z);
  b.threads.clear();
  b.threads.resize(n);
  b.epoch = 0;
  b.warp_epochs.assign(n, 0);
  std::vector<char> dyn(req.smem + 1);  // +1: a valid pointer even for 0 bytes
  share_dynamic(b, dyn);
  for (int i = 0; i < n; ++i) start_thread(b, i);
  std::vector<int> order;
  for (;;) {
    // The order of this round: fixed, or (random) drawn afresh each time.
    if (order.empty() || sch.order == Schedule::Random) order = thread_order(sch, n, rng);
    const bool ran = run_round(b, order);
    try {
      if (resolve_warps(b)) continue;
    } catch (...) {
      abort_block(b, std::current_exception());
    }
    if (ran) continue;  // (nothing ran and nothing resolved: look at the barrier)
    if (!open_barrier(b)) break;
  }
  for (SharedObject& o : b.shared) {
    if (o.owned) ::operator delete(o.ptr, std::align_val_t(16));
  }
  b.shared.clear();
}

}  // namespace

uint3 thread_index() { return current_thread("threadIdx").ctx.thread; }
uint3 block_index() { return current_thread("blockIdx").ctx.block; }
dim3 block_dim() { return current_thread("blockDim").ctx.req->block; }
dim3 grid_dim() { return current_thread("gridDim").ctx.req->grid; }

void syncthreads() {
  Thread& t = current_thread("__syncthreads");
  t.state = State::AtBarrier;
  yield(t);
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width) {
  Thread& t = current_thread(op_name(op));
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
    fail(fmt::format("{}: {} with width {} (valid: a power of two up to 32)", where(*t.block, t.ctx.linear_thread),
                     op_name(op), width));
  }
  t.state = State::AtWarp;
  t.op = op;
  t.mask = mask;
  t.value = value;
  t.arg = arg;
  t.width = width;
  yield(t);
  return t.result;
}

void* block_shared_bytes(const void* site, size_t bytes, size_t align) {
  Thread& t = current_thread("shared memory");
  for (const SharedObject& o : t.block->shared) {
    if (o.site == site) return o.ptr;
  }
  void* p = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(16));
  (void)align;
  std::memset(p, 0xff, bytes);  // poison: shared memory starts as NaN / -1
  t.block->shared.emplace_back(SharedObject{p, bytes, "static shared memory", site, true});
  return p;
}

void* dynamic_shared_bytes() { return current_thread("dynamic shared memory").block->dynamic; }

namespace {

void run_grid_once(const LaunchRequest& req, const Schedule& schedule) {
  const dim3 g = req.grid;
  const uint64_t blocks = uint64_t(g.x) * g.y * g.z;
  std::mt19937_64 rng(schedule.seed * 0x9e3779b97f4a7c15ull + current_op()->id);
  std::vector<uint64_t> order(blocks);
  std::iota(order.begin(), order.end(), 0);
  if (schedule.order == Schedule::Descending || schedule.order == Schedule::WarpReversed) {
    std::reverse(order.begin(), order.end());
  } else if (schedule.order == Schedule::Random) {
    std::shuffle(order.begin(), order.end(), rng);
  }
  memcheck_launch_start(&req);
  struct End {
    ~End() { memcheck_launch_end(); }
  } end;
  Block b;
  b.req = &req;
  for (uint64_t lin : order) {
    b.idx = uint3{unsigned(lin % g.x), unsigned((lin / g.x) % g.y), unsigned(lin / (uint64_t(g.x) * g.y))};
    run_block(b, schedule, rng);
  }
}

// The device memory a launch may write: what its non-const pointer arguments point into, and
// any allocation a by-value argument (a functor) holds a pointer into.
struct Candidate {
  Allocation* al;
  int arg;  // 1-based argument number
};
std::vector<Candidate> writable_allocations(const LaunchRequest& req) {
  std::vector<Candidate> out;
  auto add = [&](const void* p, int arg) {
    Allocation* al = find_allocation(p);
    if (!al || !al->live) return;
    for (const Candidate& c : out) {
      if (c.al == al) return;
    }
    out.push_back(Candidate{al, arg});
  };
  for (size_t i = 0; i < req.args.size(); ++i) {
    const KernelArg& a = req.args[i];
    if (a.kind == KernelArg::Pointer) {
      if (a.ptr && a.writable) add(a.ptr, int(i) + 1);
    } else {
      for (size_t off = 0; off + sizeof(void*) <= a.size; off += alignof(void*)) {
        const void* p = nullptr;
        std::memcpy(&p, static_cast<const char*>(a.bytes) + off, sizeof p);
        if (in_arena(p)) add(p, int(i) + 1);
      }
    }
  }
  return out;
}

}  // namespace

// Under AM_SIM_RACECHECK, each launch runs twice from the same inputs (device memory and its
// shadow restored in between), under the main schedule and the race-check schedule; a single
// bit of difference in what it wrote is a race (or a missing barrier) in that kernel.
// AM_SIM_KERNEL_STATS=FILE: at exit, per kernel, its launches and the largest grid and block it
// ran with (which geometries the tests reach: docs/testing.md).
struct KernelStats {
  uint64_t launches = 0, max_blocks = 0, max_threads = 0, multi_block_multi_warp = 0;
};
std::map<std::string, KernelStats>* kernel_stats() {
  static std::map<std::string, KernelStats>* stats = [] {
    const char* path = std::getenv("AM_SIM_KERNEL_STATS");
    if (!path || !*path) return static_cast<std::map<std::string, KernelStats>*>(nullptr);
    static std::string file = path;
    static std::map<std::string, KernelStats> m;
    std::atexit([] {
      if (FILE* f = std::fopen(file.c_str(), "w")) {
        std::fprintf(f, "kernel,launches,max_blocks,max_threads_per_block,launches_with_several_blocks_and_warps\n");
        for (const auto& [k, v] : m) {
          std::fprintf(f, "\"%s\",%llu,%llu,%llu,%llu\n", k.c_str(), static_cast<unsigned long long>(v.launches),
                       static_cast<unsigned long long>(v.max_blocks), static_cast<unsigned long long>(v.max_threads),
                       static_cast<unsigned long long>(v.multi_block_multi_warp));
        }
        std::fclose(f);
      }
    });
    return &m;
  }();
  return stats;
}

void run_grid(const LaunchRequest& req, const Schedule& schedule) {
  if (auto* stats = kernel_stats()) {
    KernelStats& k = (*stats)[req.kernel];
    const uint64_t blocks = uint64_t(req.grid.x) * req.grid.y * req.grid.z;
    const uint64_t threads = uint64_t(req.block.x) * req.block.y * req.block.z;
    ++k.launches;
    k.max_blocks = std::max(k.max_blocks, blocks);
    k.max_threads = std::max(k.max_threads, threads);
    if (blocks > 1 && threads > 32) ++k.multi_block_multi_warp;
  }
  ArenaOpen open;
  const Settings& set = settings();
  if (!set.racecheck) return run_grid_once(req, schedule);
  std::vector<Candidate> cands = writable_allocations(req);
  struct Saved {
    std::vector<char> data;
    std::vector<Shadow> shadow;
  };
  std::vector<Saved> before(cands.size()), after(cands.size());
  auto save = [&](std::vector<Saved>& into) {
    for (size_t i = 0; i < cands.size(); ++i) {
      const Allocation* al = cands[i].al;
      const char* p = reinterpret_cast<const char*>(al->base);
      into[i].data.assign(p, p + al->logical);
      const Shadow* s = shadow_of(p);
      into[i].shadow.assign(s, s + (al->logical + 3) / 4);
    }
  };
  auto restore = [&](const std::vector<Saved>& from) {
    for (size_t i = 0; i < cands.size(); ++i) {
      const Allocation* al = cands[i].al;
      char* p = reinterpret_cast<char*>(al->base);
      std::memcpy(p, from[i].data.data(), from[i].data.size());
      std::memcpy(static_cast<void*>(shadow_of(p)), from[i].shadow.data(), from[i].shadow.size() * sizeof(Shadow));
    }
  };
  save(before);
  run_grid_once(req, schedule);
  save(after);
  restore(before);
  run_grid_once(req, set.racecheck_schedule);
  for (size_t i = 0; i < cands.size(); ++i) {
    const Allocation* al = cands[i].al;
    const char* now = reinterpret_cast<const char*>(al->base);
    const std::vector<char>& ref = after[i].data;
    for (size_t off = 0; off < ref.size(); ++off) {
      if (ref[off] == now[off]) continue;
      const size_t w = off & ~size_t(3);
      uint32_t a = 0, b = 0;
      std::memcpy(&a, ref.data() + w, std::min<size_t>(4, ref.size() - w));
      std::memcpy(&b, now + w, std::min<size_t>(4, ref.size() - w));
      fail(
          fmt::format("kernel {} is not deterministic: run under schedules {} and {} from the same inputs, it "
                      "wrote different bits to device allocation #{} (argument {}) at byte offset {} (word "
                      "{:#010x} vs {:#010x}): a race between its threads or blocks, or a missing barrier",
                      req.kernel, schedule.name(), set.racecheck_schedule.name(), al->id, cands[i].arg, off, a, b));
    }
  }
}

}  // namespace am::sim

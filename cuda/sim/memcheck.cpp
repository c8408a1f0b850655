// The memory checker: what compute-sanitizer's memcheck and racecheck would say, on every load
// and store of the code in cuda/*.cu. The simulator build compiles those files with GCC's
// -fsanitize=thread instrumentation but links no ThreadSanitizer runtime: the __tsan_* calls the
// compiler inserts land here.
//
// Inside a kernel thread, an access must be to the thread's own stack, to its block's shared
// memory (within an object's bounds), to the launch's argument copy, or to device memory: a live
// allocation, within the bytes its owner asked for (exact, also inside the caching allocator's
// rounded blocks), and for device memory per 4-byte word (the shadow):
//  - a read of a word never written since the allocation was made or handed out is an error;
//  - a word written by one block and read or written by another in the same launch is a race
//    (atomics may share words with atomics);
//  - a word last written on another stream, with no event wait or synchronisation in between, is
//    a stream hazard.
// Outside kernels (host code in cuda/*.cu), touching device memory outside a runtime operation is
// an error (the arena's page protection catches host code elsewhere).
#include "memcheck.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#ifdef AM_SIM_COVERAGE
extern "C" char __data_start[], _end[];  // the executable's static data (the linker's symbols)
#endif

namespace am::sim {
namespace {

thread_local KernelContext* t_ctx = nullptr;
thread_local const LaunchRequest* t_req = nullptr;
thread_local const CurrentOp* t_op = nullptr;
thread_local bool t_shared_checks = true;

std::string access_text(uintptr_t a, size_t n, bool write) {
  return fmt::format("{} of {} byte{} at {:#x}", write ? "write" : "read", n, n == 1 ? "" : "s", a);
}

[[noreturn]] void kernel_fault(const KernelContext& c, uintptr_t a, size_t n, bool write, const std::string& why) {
  fail(fmt::format("{}: {}: {}", memcheck_where(c), access_text(a, n, write), why));
}

void check_hazard(const KernelContext& c, uintptr_t a, size_t n, bool write, uint32_t writer) {
  const OpInfo& wi = op_info(writer);
  if (wi.stream == t_op->stream) return;
  if (size_t(wi.stream) < t_op->known.size() && t_op->known[wi.stream] >= wi.clock) return;
  kernel_fault(c, a, n, write,
               fmt::format("{} was last written by {} on stream {}, and this launch on stream {} is not ordered after "
                           "it (no event wait or synchronisation in between)",
                           describe_address(reinterpret_cast<void*>(a)), wi.name, wi.stream, t_op->stream));
}

void check_global(KernelContext& c, uintptr_t a, size_t n, bool write, bool atomic) {
  const Allocation* al = c.cache;
  if (!al || a < al->base || a + n > al->base + al->logical || !al->live) {
    al = find_allocation(reinterpret_cast<void*>(a));
    if (!al) kernel_fault(c, a, n, write, "not inside any device allocation");
    if (al->freed) kernel_fault(c, a, n, write, fmt::format("inside device allocation #{}, which was freed", al->id));
    if (!al->live) {
      kernel_fault(c, a, n, write,
                   fmt::format("inside device allocation #{}, which was released to the caching allocator (a use after "
                               "free)",
                               al->id));
    }
    if (a + n > al->base + al->logical) {
      kernel_fault(c, a, n, write,
                   fmt::format("out of bounds: offset {} of device allocation #{} of {} bytes ({} bytes past its end)",
                               a - al->base, al->id, al->logical, a + n - (al->base + al->logical)));
    }
    c.cache = al;
  }
  const uint32_t op = t_op->id;
  Shadow* s = shadow_of(reinterpret_cast<void*>(a));
  Shadow* e = shadow_of(reinterpret_cast<void*>(a + n - 1)) + 1;
  const uint32_t tag = atomic ? kAtomicBlock : c.block_tag;
  for (; s != e; ++s) {
    if (s->op == op) {
      if (s->block != tag && s->block != 0) {
        kernel_fault(c, a, n, write,
                     s->block == kAtomicBlock
                         ? std::string("a race: the word was updated by an atomic earlier in this launch")
                         : fmt::format("a race: the word was written by block {} earlier in this launch (blocks are "
                                       "not ordered within a launch)",
                                       s->block - 1));
      }
    } else if (s->op == 0) {
      if (!write) {
        kernel_fault(
            c, a, n, write,
            fmt::format("reads device memory never written ({})", describe_address(reinterpret_cast<void*>(a))));
      }
    } else {
      check_hazard(c, a, n, write, s->op);
    }
    if (write) *s = Shadow{op, tag};
  }
}

// A block's shared memory, per 4-byte word: a read of a word no thread of the block has written
// is an error; so is a word written by one thread and read or written by another with no barrier
// between them, or read by one thread and then written by another (threads of one warp: no
// __syncwarp by the first since). One reader is kept per word (the first not yet ordered before
// the threads that come after), so a write after several reads is checked against one of them.
// Atomics may share words with atomics.
bool ordered_after(const KernelContext& c, uint32_t other, uint32_t other_epoch, uint32_t other_warp_epoch) {
  const uint32_t me = static_cast<uint32_t>(c.linear_thread) + 1;
  if (other == me || other_epoch != *c.block_epoch) return true;  // a barrier since, or itself
  if (other == kAtomicBlock) return false;
  return (other - 1) / 32 == (me - 1) / 32 && c.warp_epochs[other - 1] != other_warp_epoch;  // warp-synced since
}

void check_shared_word(KernelContext& c, SharedObject& o, uintptr_t a, size_t n, bool write, bool atomic) {
  const uint32_t me = static_cast<uint32_t>(c.linear_thread) + 1, epoch = *c.block_epoch;
  const uint32_t my_warp_epoch = c.warp_epochs[me - 1];
  const size_t first = (a - reinterpret_cast<uintptr_t>(o.ptr)) / 4;
  const size_t last = (a + n - 1 - reinterpret_cast<uintptr_t>(o.ptr)) / 4;
  for (size_t i = first; i <= last && i < o.shadow.size(); ++i) {
    SharedWord& w = o.shadow[i];
    auto race = [&](uint32_t who, const char* what) {
      kernel_fault(
          c, a, n, write,
          who == kAtomicBlock
              ? fmt::format("a race: offset {} of {} was updated by an atomic with no barrier since", i * 4, o.what)
              : fmt::format("a race: offset {} of {} was {} by thread {} with no barrier since{}", i * 4, o.what, what,
                            who - 1, (who - 1) / 32 == (me - 1) / 32 ? " (same warp: no __syncwarp since)" : ""));
    };
    if (w.thread == 0) {
      if (!write || atomic) {
        kernel_fault(c, a, n, write, fmt::format("reads {} never written in this block (offset {})", o.what, i * 4));
      }
    } else if (!(atomic && w.thread == kAtomicBlock) && !ordered_after(c, w.thread, w.epoch, w.warp_epoch)) {
      race(w.thread, "written");
    }
    if (write && w.reader != 0 && !(atomic && w.reader == kAtomicBlock) &&
        !ordered_after(c, w.reader, w.reader_epoch, w.reader_warp_epoch)) {
      race(w.reader, "read");
    }
    if (write) {
      w.thread = atomic ? kAtomicBlock : me;
      w.epoch = epoch;
      w.warp_epoch = atomic ? 0 : my_warp_epoch;
      w.reader = 0;
    } else if (w.reader == 0 || ordered_after(c, w.reader, w.reader_epoch, w.reader_warp_epoch)) {
      // (An earlier reader not yet ordered before this thread is kept: a write by anyone else races it.)
      w.reader = me;
      w.reader_epoch = epoch;
      w.reader_warp_epoch = my_warp_epoch;
    }
  }
}

void check_shared(KernelContext& c, uintptr_t a, size_t n, bool write, bool atomic) {
  const uintptr_t args = reinterpret_cast<uintptr_t>(c.req->storage_begin);
  if (a >= args && a + n <= args + c.req->storage_size) return;  // the launch's argument copy
#ifdef AM_SIM_COVERAGE
  // gcov's counters (static data of the executable), which kernel code updates in a coverage build.
  if (a >= reinterpret_cast<uintptr_t>(__data_start) && a < reinterpret_cast<uintptr_t>(_end)) return;
#endif
  for (SharedObject& o : *c.shared) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(o.ptr);
    if (a >= lo && a < lo + std::max<size_t>(o.bytes, 1)) {
      if (a + n > lo + o.bytes) {
        kernel_fault(c, a, n, write,
                     fmt::format("out of bounds: offset {} of {} of {} bytes", a - lo, o.what, o.bytes));
      }
      if (t_shared_checks) check_shared_word(c, o, a, n, write, atomic);
      return;
    }
  }
  // Just past a shared object: name it (the heap would hide the overrun).
  for (const SharedObject& o : *c.shared) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(o.ptr);
    if (a >= lo + o.bytes && a < lo + o.bytes + 256) {
      kernel_fault(c, a, n, write, fmt::format("out of bounds: offset {} of {} of {} bytes", a - lo, o.what, o.bytes));
    }
  }
  kernel_fault(c, a, n, write, "host memory (not device memory, shared memory or the thread's stack)");
}

inline void check(const volatile void* p, size_t n, bool write, bool atomic = false) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  KernelContext* c = t_ctx;
  if (!c) {
    if (in_arena(const_cast<const void*>(p)) && !arena_is_open()) {
      // Fatal, as the page fault would be: GCC declares these callbacks nothrow, so host code
      // could not catch an exception from here anyway.
      std::fprintf(stderr, "[cuda-sim] error: host code %s device memory at %#zx (%s) outside any kernel or copy\n",
                   write ? "wrote" : "read", static_cast<size_t>(a),
                   describe_address(const_cast<const void*>(p)).c_str());
      std::fflush(stderr);
      std::abort();
    }
    return;
  }
  if (a - c->stack_lo < c->stack_size) return;
  if (in_arena(const_cast<const void*>(p))) {
    check_global(*c, a, n, write, atomic);
  } else {
    check_shared(*c, a, n, write, atomic);
  }
}

}  // namespace

std::string memcheck_where(const KernelContext& c) {
  return fmt::format("kernel {} block ({},{},{}) thread ({},{},{})", c.req->kernel, c.block.x, c.block.y, c.block.z,
                     c.thread.x, c.thread.y, c.thread.z);
}

void memcheck_enter(KernelContext* ctx) { t_ctx = ctx; }
void memcheck_launch_start(const LaunchRequest* req) {
  t_req = req;
  t_op = current_op();
  t_shared_checks = settings().shared_checks;
}
void memcheck_launch_end() {
  t_req = nullptr;
  t_op = nullptr;
}

}  // namespace am::sim

using am::sim::check;

// ---- the callbacks GCC's -fsanitize=thread instrumentation calls ----
extern "C" {

void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void** p, void*) { check(p, sizeof(void*), true); }
void __tsan_vptr_read(void** p) { check(p, sizeof(void*), false); }
void __tsan_read_range(void* p, unsigned long n) {
  if (n) check(p, n, false);
}
void __tsan_write_range(void* p, unsigned long n) {
  if (n) check(p, n, true);
}

#define AM_TSAN_ACCESS(N)                                                 \
  void __tsan_read##N(void* p) { check(p, N, false); }                    \
  void __tsan_write##N(void* p) { check(p, N, true); }                    \
  void __tsan_unaligned_read##N(void* p) { check(p, N, false); }          \
  void __tsan_unaligned_write##N(void* p) { check(p, N, true); }          \
  void __tsan_volatile_read##N(void* p) { check(p, N, false); }           \
  void __tsan_volatile_write##N(void* p) { check(p, N, true); }           \
  void __tsan_unaligned_volatile_read##N(void* p) { check(p, N, false); } \
  void __tsan_unaligned_volatile_write##N(void* p) { check(p, N, true); }
AM_TSAN_ACCESS(1)
AM_TSAN_ACCESS(2)
AM_TSAN_ACCESS(4)
AM_TSAN_ACCESS(8)
AM_TSAN_ACCESS(16)
#undef AM_TSAN_ACCESS

#define AM_TSAN_ATOMIC(N, T)                                                                \
  T __tsan_atomic##N##_load(const volatile T* a, int) {                                     \
    check(a, sizeof(T), false, true);                                                       \
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                            \
  }                                                                                         \
  void __tsan_atomic##N##_store(volatile T* a, T v, int) {                                  \
    check(a, sizeof(T), true, true);                                                        \
    __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                               \
  }                                                                                         \
  T __tsan_atomic##N##_exchange(volatile T* a, T v, int) {                                  \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                     \
  }                                                                                         \
  T __tsan_atomic##N##_fetch_add(volatile T* a, T v, int) {                                 \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                      \
  }                                                                                         \
  T __tsan_atomic##N##_fetch_sub(volatile T* a, T v, int) {                                 \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                      \
  }                                                                                         \
  T __tsan_atomic##N##_fetch_and(volatile T* a, T v, int) {                                 \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);                                      \
  }                                                                                         \
  T __tsan_atomic##N##_fetch_or(volatile T* a, T v, int) {                                  \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);                                       \
  }                                                                                         \
  T __tsan_atomic##N##_fetch_xor(volatile T* a, T v, int) {                                 \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);                                      \
  }                                                                                         \
  T __tsan_atomic##N##_fetch_nand(volatile T* a, T v, int) {                                \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST);                                     \
  }                                                                                         \
  int __tsan_atomic##N##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) {      \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
  }                                                                                         \
  int __tsan_atomic##N##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) {        \
    check(a, sizeof(T), true, true);                                                        \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
  }                                                                                         \
  T __tsan_atomic##N##_compare_exchange_val(volatile T* a, T c, T v, int, int) {            \
    check(a, sizeof(T), true, true);                                                        \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);       \
    return c;                                                                               \
  }
AM_TSAN_ATOMIC(8, char)
AM_TSAN_ATOMIC(16, short)
AM_TSAN_ATOMIC(32, int)
AM_TSAN_ATOMIC(64, long)
#undef AM_TSAN_ATOMIC

void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

}  // extern "C"

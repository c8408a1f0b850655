// Simulated device memory: one reserved address range (the arena), carved into 256-byte-aligned
// allocations, with a shadow range beside it (one Shadow per 4-byte word). While no runtime
// operation runs, the arena's pages are protected: host code that reads or writes a device
// pointer faults, and the SIGSEGV handler names the allocation it touched.
#include "sim_internal.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace am::sim {
namespace {

constexpr size_t kAlign = 256;
constexpr size_t kPage = 4096;

size_t env_size(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  if (end == v || x <= 0) return fallback;
  return static_cast<size_t>(x * 1073741824.0);  // GiB
}

struct Arena {
  uintptr_t base = 0;
  size_t reserved = 0;
  size_t limit = 0;  // the simulated device's memory (AM_SIM_DEVICE_GIB, default 8)
  size_t bump = 0;   // bytes handed out from the start of the range so far
  size_t in_use = 0;
  Shadow* shadow = nullptr;
  std::map<uintptr_t, Allocation> table;
  std::map<size_t, std::vector<uintptr_t>> free_by_size;
  uint64_t next_id = 1;
  int open_depth = 0;
  bool protect = true;
  std::recursive_mutex mu;
  struct sigaction previous {};

  Arena() {
    limit = env_size("AM_SIM_DEVICE_GIB", size_t(8) << 30);
    reserved = (limit + (size_t(1) << 30)) & ~(kPage - 1);
    void* p = mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "[cuda-sim] cannot reserve %zu bytes of address space for device memory\n", reserved);
      std::abort();
    }
    base = reinterpret_cast<uintptr_t>(p);
    void* s = mmap(nullptr, reserved / 4 * sizeof(Shadow), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s == MAP_FAILED) {
      std::fprintf(stderr, "[cuda-sim] cannot reserve the shadow of device memory\n");
      std::abort();
    }
    shadow = static_cast<Shadow*>(s);
    const char* prot = std::getenv("AM_SIM_PROTECT");
    protect = !(prot && std::strcmp(prot, "0") == 0);
    install_handler();
  }

  // The pages handed out so far: open (readable, writable) or protected; always open when
  // AM_SIM_PROTECT=0.
  void set_protection(bool open) {
    if (bump == 0) return;
    const size_t len = (bump + kPage - 1) & ~(kPage - 1);
    mprotect(reinterpret_cast<void*>(base), len, open || !protect ? PROT_READ | PROT_WRITE : PROT_NONE);
  }

  void install_handler();
};

Arena& arena() {
  static Arena* a = new Arena();  // never destroyed: kernels may run from static destructors
  return *a;
}

void on_segv(int sig, siginfo_t* info, void* ctx) {
  Arena& a = arena();
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (addr >= a.base && addr < a.base + a.reserved) {
    const std::string where = describe_address(info->si_addr);
    std::fprintf(stderr,
                 "[cuda-sim] error: host code touched device memory at %p (%s) outside any kernel or copy: "
                 "device memory is reached only through kernels and cudaMemcpy\n",
                 info->si_addr, where.c_str());
    std::fflush(stderr);
    signal(SIGABRT, SIG_DFL);
    std::abort();
  }
  // Not ours: hand it to whoever was there before (or die as usual).
  if (a.previous.sa_flags & SA_SIGINFO) {
    if (a.previous.sa_sigaction) return a.previous.sa_sigaction(sig, info, ctx);
  } else if (a.previous.sa_handler != SIG_DFL && a.previous.sa_handler != SIG_IGN && a.previous.sa_handler) {
    return a.previous.sa_handler(sig);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void Arena::install_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &previous);
}

}  // namespace

void install_fault_handler() { arena().install_handler(); }

void* arena_alloc(size_t bytes) {
  Arena& a = arena();
  std::lock_guard<std::recursive_mutex> lock(a.mu);
  const size_t size = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  if (a.in_use + size > a.limit) return nullptr;
  uintptr_t p = 0;
  auto it = a.free_by_size.find(size);
  if (it != a.free_by_size.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    if (a.bump + size > a.reserved) return nullptr;
    p = a.base + a.bump;
    a.bump += size;
  }
  a.in_use += size;
  Allocation& al = a.table[p];
  al = Allocation{p, size, bytes, true, false, a.next_id++};
  shadow_clear(reinterpret_cast<void*>(p), size);
  {
    ArenaOpen open;  // poison: fresh device memory reads as NaN / -1
    std::memset(reinterpret_cast<void*>(p), 0xff, size);
  }
  return reinterpret_cast<void*>(p);
}

void arena_free(void* ptr) {
  Arena& a = arena();
  std::lock_guard<std::recursive_mutex> lock(a.mu);
  auto it = a.table.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == a.table.end() || it->second.freed) {
    fail(fmt::format("cudaFree({}): not a live cudaMalloc allocation ({})", ptr, describe_address(ptr)));
  }
  Allocation& al = it->second;
  al.live = false;
  al.freed = true;
  a.in_use -= al.raw;
  a.free_by_size[al.raw].push_back(al.base);
}

bool in_arena(const void* p) {
  const Arena& a = arena();
  const uintptr_t x = reinterpret_cast<uintptr_t>(p);
  return x >= a.base && x < a.base + a.reserved;
}

Allocation* find_allocation(const void* p) {
  Arena& a = arena();
  std::lock_guard<std::recursive_mutex> lock(a.mu);
  const uintptr_t x = reinterpret_cast<uintptr_t>(p);
  auto it = a.table.upper_bound(x);
  if (it == a.table.begin()) return nullptr;
  --it;
  Allocation& al = it->second;
  return x < al.base + al.raw ? &al : nullptr;
}

Shadow* shadow_of(const void* p) {
  const Arena& a = arena();
  return a.shadow + (reinterpret_cast<uintptr_t>(p) - a.base) / 4;
}

void shadow_clear(const void* p, size_t bytes) {
  if (bytes == 0) return;
  Shadow* s = shadow_of(p);
  Shadow* e = shadow_of(static_cast<const char*>(p) + bytes - 1) + 1;
  std::memset(static_cast<void*>(s), 0, sizeof(Shadow) * static_cast<size_t>(e - s));
}

void shadow_set(const void* p, size_t bytes, uint32_t op) {
  if (bytes == 0) return;
  Shadow* s = shadow_of(p);
  Shadow* e = shadow_of(static_cast<const char*>(p) + bytes - 1) + 1;
  for (; s != e; ++s) *s = Shadow{op, 0};
}

void shadow_copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  const uint32_t op = current_op() ? current_op()->id : 0;
  // Word by word where both are word-aligned alike; else the destination counts as written.
  if ((reinterpret_cast<uintptr_t>(dst) - reinterpret_cast<uintptr_t>(src)) % 4 != 0) {
    shadow_set(dst, bytes, op);
    return;
  }
  const Shadow* s = shadow_of(src);
  Shadow* d = shadow_of(dst);
  Shadow* e = shadow_of(static_cast<const char*>(dst) + bytes - 1) + 1;
  for (; d != e; ++d, ++s) *d = Shadow{s->op == 0 ? 0 : op, 0};
}

std::string describe_address(const void* p) {
  const Allocation* al = find_allocation(p);
  if (!al) return "not inside any device allocation";
  const uintptr_t off = reinterpret_cast<uintptr_t>(p) - al->base;
  return fmt::format("offset {} of device allocation #{} of {} bytes{}", off, al->id, al->logical,
                     al->freed  ? ", which was freed"
                     : al->live ? ""
                                : ", which is parked in the caching allocator");
}

size_t device_bytes_in_use() { return arena().in_use; }
size_t device_bytes_limit() { return arena().limit; }

ArenaOpen::ArenaOpen() {
  Arena& a = arena();
  std::lock_guard<std::recursive_mutex> lock(a.mu);
  if (a.open_depth++ == 0) a.set_protection(true);
}
ArenaOpen::~ArenaOpen() {
  Arena& a = arena();
  std::lock_guard<std::recursive_mutex> lock(a.mu);
  if (--a.open_depth == 0) a.set_protection(false);
}
bool arena_is_open() { return arena().open_depth > 0; }

// Both run in stream order (the backend's compute stream): work queued before on
// the block's previous use still sees it as it was.
void note_handout(void* p, size_t bytes, cudaStream_t stream) {
  Allocation* al = find_allocation(p);
  if (!al || al->base != reinterpret_cast<uintptr_t>(p) || bytes > al->raw || al->freed) {
    fail(fmt::format("caching allocator handed out {} bytes at {}: not the start of a device allocation that large",
                     bytes, p));
  }
  enqueue(
      stream, "caching allocator handout",
      [al, p, bytes] {
        al->live = true;
        al->logical = bytes;
        shadow_clear(p, al->raw);
        ArenaOpen open;
        std::memset(p, 0xff, al->raw);
      },
      false);
}

void note_cached(void* p, cudaStream_t stream) {
  Allocation* al = find_allocation(p);
  if (!al || al->base != reinterpret_cast<uintptr_t>(p) || al->freed) {
    fail(fmt::format("caching allocator took back {}: not a device allocation ({})", p, describe_address(p)));
  }
  enqueue(
      stream, "caching allocator release", [al] { al->live = false; }, false);
}

}  // namespace am::sim

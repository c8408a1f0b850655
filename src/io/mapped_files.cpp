#include "io/mapped_files.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace am {
namespace {

// A slot is free while start is 0. A registration fills bytes and text, then publishes start; an
// unregistration clears start first, so the handler never reads a half-written slot as in use.
struct Slot {
  std::atomic<uintptr_t> start{0};
  size_t bytes = 0;
  char text[600] = {};  // "<what> '<path>'", NUL-terminated
};
static_assert(std::atomic<uintptr_t>::is_always_lock_free);

Slot g_slots[kMaxMappedFiles];
std::mutex g_mutex;  // registrations only; never taken by the handler

void write_all(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

extern "C" void on_sigbus(int sig, siginfo_t* info, void*) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Slot& s : g_slots) {
    const uintptr_t start = s.start.load(std::memory_order_acquire);
    if (start == 0 || a < start || a - start >= s.bytes) continue;
    write_all("error: ");
    write_all(s.text);
    write_all(
        " was truncated or replaced while this process was reading it (a read of its "
        "memory map failed: SIGBUS)\n  ---> HINT: never modify or delete the files of a "
        "running job; restore the file and resume from the last checkpoint\n");
    ::_exit(1);
  }
  // Not one of ours: the default action (a core dump, as without this handler).
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Installs the handler unless it is in place (a library, e.g. MPI's, may have replaced it since).
void install() {
  struct sigaction cur {};
  if (::sigaction(SIGBUS, nullptr, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus) {
    return;
  }
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, nullptr);
}

}  // namespace

void register_mapping(const void* addr, size_t bytes, const std::string& path, std::string_view what) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  install();
  for (Slot& s : g_slots) {
    if (s.start.load(std::memory_order_relaxed) != 0) continue;
    s.bytes = bytes;
    std::string text = std::string(what) + " '" + path + "'";
    text.resize(std::min(text.size(), sizeof(s.text) - 1));
    std::memcpy(s.text, text.c_str(), text.size() + 1);
    s.start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    return;
  }
}

void unregister_mapping(const void* addr) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  for (Slot& s : g_slots) {
    if (s.start.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(addr)) {
      s.start.store(0, std::memory_order_release);
      return;
    }
  }
}

}  // namespace am

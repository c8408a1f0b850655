#include "train/stop_signals.h"

#include "core/error.h"

#include <signal.h>

#include <atomic>
#include <csignal>

namespace am {
namespace {

// One counter per nesting level, in static storage rather than in the guard: the handler may run on
// another thread while a guard is being destroyed, and must never touch a dead object. Lock-free
// atomics are what a signal handler may use.
constexpr int kMaxLevels = 4;  // a sweep and its trainer need two
std::atomic<int> g_signals[kMaxLevels];
std::atomic<int> g_levels{0};  // enabled guards alive; the innermost one, g_levels - 1, counts
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) {
  const int level = g_levels.load();
  // level 0 cannot happen (the handler is installed only while a guard lives); were it to, the
  // signal gets its default action, as without a guard.
  if (level == 0 || g_signals[level - 1].fetch_add(1) >= 1) {  // a second signal: stop now
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

// Requests that arrived before the first guard (catch_early_stop_signals); open until that guard
// takes them over, after which on_early_signal gives a signal its default action, as before.
std::atomic<int> g_early{0};
std::atomic<bool> g_early_open{false};

extern "C" void on_early_signal(int sig) {
  if (!g_early_open.load() || g_early.fetch_add(1) >= 1) {  // no guard to come, or a second signal
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

sigset_t stop_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&set, sig);
  return set;
}

}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_set();
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

void catch_early_stop_signals(bool catch_them) {
  if (catch_them) {
    g_early_open = true;
    for (int sig : {SIGINT, SIGTERM, SIGUSR1}) std::signal(sig, on_early_signal);
  }
  const sigset_t set = stop_set();
  sigprocmask(SIG_UNBLOCK, &set, nullptr);  // a signal held pending (also across the re-exec) arrives now
}

StopSignals::StopSignals(bool enable) {
  if (!enable) return;
  const int level = g_levels.load();
  AM_CHECK(level < kMaxLevels, "{} nested signal guards", level + 1);
  level_ = level;
  g_signals[level_] = 0;  // a new guard counts from zero (an earlier one at this level may have counted)
  g_levels = level_ + 1;  // before the handler is installed, so that it never sees a guard without a counter
  prev_int_ = std::signal(SIGINT, on_stop_signal);
  prev_term_ = std::signal(SIGTERM, on_stop_signal);
  prev_usr1_ = std::signal(SIGUSR1, on_stop_signal);
  // The first guard takes over the requests that came before it (from main's start on).
  if (level_ == 0 && g_early_open.exchange(false)) g_signals[0] += g_early.exchange(0);
}

StopSignals::~StopSignals() {
  if (level_ < 0) return;
  // Handlers first, then the level: a signal in between still finds this guard's counter.
  std::signal(SIGINT, prev_int_);
  std::signal(SIGTERM, prev_term_);
  std::signal(SIGUSR1, prev_usr1_);
  g_levels = level_;
}

bool StopSignals::requested() const { return level_ >= 0 && g_signals[level_].load() > 0; }

}  // namespace am

#include "train/stop_signals.h"

#include "core/error.h"

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

}  // namespace

StopSignals::StopSignals(bool enable) {
  if (!enable) return;
  const int level = g_levels.load();
  AM_CHECK(level < kMaxLevels, "{} nested signal guards", level + 1);
  level_ = level;
  g_signals[level_] = 0;    // a new guard counts from zero (an earlier one at this level may have counted)
  g_levels = level_ + 1;    // before the handler is installed, so that it never sees a guard without a counter
  prev_int_ = std::signal(SIGINT, on_stop_signal);
  prev_term_ = std::signal(SIGTERM, on_stop_signal);
  prev_usr1_ = std::signal(SIGUSR1, on_stop_signal);
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

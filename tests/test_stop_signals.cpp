// The SIGINT/SIGTERM/SIGUSR1 guard shared by the trainer and the sweep (src/train/stop_signals.h): a first
// signal is counted by the innermost enabled guard, a second one ends the process, handlers are
// restored, a disabled guard installs nothing.
#include "train/stop_signals.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <csignal>

using am::StopSignals;

namespace {

// The exit status of f run in a child process, or 128 + the signal that ended it.
template <typename F>
int in_child(F f) {
  const pid_t p = fork();
  REQUIRE(p >= 0);
  if (p == 0) {
    const int null = open("/dev/null", O_WRONLY);  // the test framework's own report of a signal
    dup2(null, 1);
    dup2(null, 2);
    f();
    _exit(0);
  }
  int st = 0;
  waitpid(p, &st, 0);
  return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

}  // namespace

TEST_CASE("stop signals: the innermost enabled guard counts a first signal, handlers are restored", "[train]") {
  void (*before_int)(int) = std::signal(SIGINT, SIG_DFL);
  void (*before_term)(int) = std::signal(SIGTERM, SIG_DFL);
  {
    StopSignals off(false);
    CHECK(std::signal(SIGINT, SIG_DFL) == SIG_DFL);  // a disabled guard installs nothing
    CHECK(!off.requested());
  }
  {
    StopSignals sweep(true);
    CHECK(!sweep.requested());
    {
      StopSignals trainer(true);
      std::raise(SIGINT);
      CHECK(trainer.requested());
      CHECK(!sweep.requested());  // the inner guard counted it
    }
    CHECK(!sweep.requested());
    std::raise(SIGTERM);  // between points: the sweep's guard counts it
    CHECK(sweep.requested());
    {
      StopSignals trainer2(true);  // a new guard counts from zero
      CHECK(!trainer2.requested());
      StopSignals off(false);  // a disabled one inside leaves the counting to trainer2
      std::raise(SIGINT);
      CHECK(trainer2.requested());
    }
  }
  CHECK(std::signal(SIGINT, SIG_DFL) == SIG_DFL);  // restored
  CHECK(std::signal(SIGTERM, SIG_DFL) == SIG_DFL);
  CHECK(std::signal(SIGUSR1, SIG_DFL) == SIG_DFL);
  auto mine = +[](int) {};
  std::signal(SIGINT, mine);
  { StopSignals g(true); }
  CHECK(std::signal(SIGINT, SIG_DFL) == mine);  // a custom previous handler too
  std::signal(SIGINT, before_int);
  std::signal(SIGTERM, before_term);
}

TEST_CASE("stop signals: a second signal ends the process, a first does not", "[train]") {
  CHECK(in_child([] {
          StopSignals g(true);
          std::raise(SIGTERM);
          _exit(g.requested() ? 7 : 8);
        }) == 7);
  CHECK(in_child([] {
          StopSignals g(true);
          std::raise(SIGINT);
          std::raise(SIGINT);
          _exit(7);
        }) == 128 + SIGINT);
  CHECK(in_child([] {  // SIGUSR1 (what mpirun forwards for scripts/launch.sh): a first one is counted
          StopSignals g(true);
          std::raise(SIGUSR1);
          _exit(g.requested() ? 7 : 8);
        }) == 7);
  CHECK(in_child([] {  // and a second one, or a SIGTERM after it, ends the process
          StopSignals g(true);
          std::raise(SIGUSR1);
          std::raise(SIGTERM);
          _exit(7);
        }) == 128 + SIGTERM);
  CHECK(in_child([] {  // inside a sweep's guard
          StopSignals sweep(true);
          StopSignals trainer(true);
          std::raise(SIGINT);
          std::raise(SIGTERM);
          _exit(7);
        }) == 128 + SIGTERM);
  CHECK(in_child([] {  // the trainer's guard gone, the sweep's counts afresh: its second signal kills
          StopSignals sweep(true);
          {
            StopSignals trainer(true);
            std::raise(SIGINT);
          }
          std::raise(SIGINT);
          std::raise(SIGINT);
          _exit(7);
        }) == 128 + SIGINT);
}

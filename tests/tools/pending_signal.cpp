// am-pending-signal SIG PROGRAM [ARGS...]: runs PROGRAM with signal SIG (INT, TERM or USR1) already
// pending: blocked, raised, then exec'd (the mask and the pending signal survive execv). This is a
// signal that arrives before the program's main() could install a handler, deterministically: the
// CLI test of a stop request at start-up (train/stop_signals.h, catch_early_stop_signals).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  const int sig = argc < 3                        ? 0
                  : !std::strcmp(argv[1], "INT")  ? SIGINT
                  : !std::strcmp(argv[1], "TERM") ? SIGTERM
                  : !std::strcmp(argv[1], "USR1") ? SIGUSR1
                                                  : 0;
  if (sig == 0) {
    std::fprintf(stderr, "usage: am-pending-signal INT|TERM|USR1 PROGRAM [ARGS...]\n");
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  raise(sig);  // pending: blocked
  execv(argv[2], argv + 2);
  std::perror(argv[2]);
  return 127;
}

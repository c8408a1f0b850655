// SIGINT/SIGTERM/SIGUSR1 as a request to stop at the next safe point, shared by the trainer (it
// stops after the current step, with a checkpoint) and the sweep (it stops before the next point).
#pragma once

namespace am {

// While an enabled StopSignals lives, the first SIGINT, SIGTERM or SIGUSR1 is only counted:
// requested() turns true and the owner stops where it is safe to. A second one restores the default
// action and re-raises the signal, which ends the process at once (checkpoints and results are
// written atomically, so nothing is left half written). The destructor restores the handlers
// installed before. SIGUSR1 is how scripts/launch.sh stops a multi-process job: mpirun forwards it
// to every rank, where a SIGTERM to mpirun is followed by SIGKILL a second later. enable = false
// installs nothing and requested() stays false: signals go where they went.
//
// Guards nest as scopes do: the sweep holds one while each point's trainer holds its own inside it,
// and a signal is counted by the innermost enabled guard only, each counting from zero from its
// construction on. A first signal while a point trains therefore stops that point (which reports
// it interrupted); one between points is counted by the sweep's guard.
// A signal before the first guard exists (while the process starts: the OpenMP re-exec, MPI's
// start-up, reading the config) is a stop request too, not the default death. main() calls
// block_stop_signals() first thing, so that a signal that arrives during the re-exec stays pending
// across execv (the signal mask and pending signals survive it), then, in the final image,
// catch_early_stop_signals(true) for the commands that hold a guard (train, sweep): it installs a
// process-wide handler that records the request and unblocks the three signals. The first guard
// constructed takes the recorded request over (requested() is true from its start: the trainer
// ends "interrupted before training started", exit 0); a second early signal ends the process at
// once. catch_early_stop_signals(false) only unblocks them (other commands keep the default action).
void block_stop_signals();
void catch_early_stop_signals(bool catch_them);

class StopSignals {
 public:
  explicit StopSignals(bool enable);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // A signal has arrived since construction (always false when not enabled).
  bool requested() const;

 private:
  int level_ = -1;  // this guard's nesting level, which picks its counter; -1: not enabled
  void (*prev_int_)(int) = nullptr;
  void (*prev_term_)(int) = nullptr;
  void (*prev_usr1_)(int) = nullptr;
};

}  // namespace am

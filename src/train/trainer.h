// The training loop: data -> model forward/backward over micro-batches -> clip -> AdamW -> log,
// evaluate, checkpoint. Resumes bit-exactly from a checkpoint; SIGINT/SIGTERM finish the current
// step, write a checkpoint and return (the CLI then exits 0). One that arrives during the set-up
// (data, model, checkpoint loading) stops the run before its first step, with nothing written:
// summary.interrupted with end_step == start_step (the CLI says so and exits 0).
#pragma once

#include "config/config.h"
#include "dist/comm.h"

#include <limits>
#include <string>
#include <vector>

namespace am {

struct TrainOptions {
  // "" = a fresh run; "latest" = the newest complete checkpoint of the run directory; otherwise
  // the path of a checkpoint directory.
  std::string resume;
  bool handle_signals = true;  // install the SIGINT/SIGTERM handlers
  std::string command_hint;    // how to resume, printed when interrupted
  // Resuming with other train.* values than the checkpoint's (steps, learning-rate schedule,
  // optimizer, global batch) is refused unless this is set; then each change is a warning
  // (train/resume_check.h).
  bool allow_schedule_change = false;
  // The world communicator; null: made from dist.comm (single process, or MPI under mpirun).
  // Tests pass one to run several layouts in one job.
  Comm* world = nullptr;
  // Called after each phase of the set-up ("data", "model") with its name; tests raise
  // a signal there to interrupt the set-up at a known point. Null: nothing is called.
  void (*on_setup_phase)(const char* phase) = nullptr;
  // Called after each training step with the step count reached, before the loop looks for a
  // stop request; tests raise a signal there to stop the run at a known step. Null: nothing.
  void (*on_step)(int64_t step) = nullptr;
};

struct TrainSummary {
  std::string run_dir;
  std::string last_checkpoint;
  int64_t start_step = 0;           // 0, or the step resumed from
  int64_t end_step = 0;             // steps completed when the loop stopped
  std::vector<double> step_losses;  // train cross-entropy of each step this call ran
  double final_train_loss = std::numeric_limits<double>::quiet_NaN();
  double final_val_loss = std::numeric_limits<double>::quiet_NaN();
  double unigram_entropy = std::numeric_limits<double>::quiet_NaN();  // from dataset.json
  double tokens_per_s = 0;  // mean over this call's steps (evaluation excluded)
  double seconds = 0;       // time in this call's training steps
  bool interrupted = false;
  bool stop_requested = false;    // a SIGINT/SIGTERM during the last step: the run completed
  bool already_complete = false;  // resumed at or past train.max_steps: nothing was run
  int rank = 0;                   // this process's rank (0 prints the summary)
  size_t opt_state_bytes = 0;     // this rank's AdamW moments (a shard of them with dist.zero 1)
};

TrainSummary train(const Config& cfg, const TrainOptions& options);

// The run directory of a config: <run.out_dir>/<run.name>.
std::string run_dir_of(const Config& cfg);

}  // namespace am

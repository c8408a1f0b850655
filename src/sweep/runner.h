// Running a sweep's points one after another, in-process, resumably:
//   - a point whose run directory has summary.json with completed: true (and at least
//     train.max_steps steps) is skipped;
//   - one with a checkpoint before train.max_steps is resumed from its newest checkpoint;
//   - one whose newest checkpoint is at train.max_steps but has no summary.json (the summary was
//     deleted, or the process died between the two writes) is run again from scratch, after its
//     run directory is moved aside to <id>.stale-<N> (nothing is deleted);
//   - anything else runs from scratch.
// A point that throws is reported and the sweep goes on; SIGINT/SIGTERM let the running point
// checkpoint (the trainer handles them) and stop the sweep before the next point.
// Under mpirun every point runs on all N ranks in turn: rank 0 alone inspects the run
// directories (its decision is broadcast), reads the summaries and writes the results files; a
// point's status is the same on every rank (failed when it failed on any).
#pragma once

#include "sweep/points.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace am {

enum class PointStatus { Pending, Done, SkippedDone, Failed, Interrupted };

// "pending", "done", "skipped-done", "failed", "interrupted"
const char* status_name(PointStatus s);

// What the sweep will do with a point, judged from its run directory.
struct PointState {
  enum class Action { Run, Resume, Skip, Rerun };
  Action action = Action::Run;
  int64_t checkpoint_step = -1;      // Resume / Rerun: the newest complete checkpoint's step
  nlohmann::json summary;            // Skip: the run's summary.json
  std::vector<std::string> changed;  // Skip: keys whose value differs from the run's config
  std::string describe() const;      // "run", "resume from step 3", "skip (done)", ...
};
PointState inspect_point(const Config& cfg);

struct PointResult {
  PointStatus status = PointStatus::Pending;
  nlohmann::json summary;  // summary.json of a done or skipped point; null otherwise
  std::string error;       // a failed point's message
};

struct SweepOptions {
  bool handle_signals = true;               // SIGINT/SIGTERM stop the sweep (see above)
  std::string command_hint;                 // how to continue an interrupted sweep (the same command)
  bool allow_schedule_change = false;       // TrainOptions::allow_schedule_change for resumed points
  void (*on_step)(int64_t step) = nullptr;  // TrainOptions::on_step for every point (tests)
};

struct SweepOutcome {
  std::vector<PointResult> results;  // one per point, in sweep order
  bool interrupted = false;
  std::string csv_path, md_path;  // the results files written at the end (by rank 0)
  int rank = 0;                   // this process's rank under mpirun (0 prints the results)
};

// Runs (or skips) every point in order, then writes <plan.dir>/results.csv and results.md, also
// when the sweep was interrupted or some points failed.
SweepOutcome run_sweep(const SweepPlan& plan, const SweepOptions& options);

}  // namespace am

#include "sweep/runner.h"

#include "core/error.h"
#include "dist/launch.h"
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "sweep/results.h"
#include "train/batch.h"
#include "train/stop_signals.h"
#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>

namespace am {
namespace fs = std::filesystem;
namespace {

// summary.json of a run directory, or null when there is none (or it cannot be read: then the
// point is treated as unfinished, with a warning).
nlohmann::json read_summary(const std::string& run_dir) {
  const fs::path p = fs::path(run_dir) / "summary.json";
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return nullptr;
  try {
    nlohmann::json j = nlohmann::json::parse(read_file(p.string()));
    if (j.is_object()) return j;
  } catch (const std::exception& e) {
    spdlog::warn("{}: unreadable ({}); treating the run as unfinished", p.string(), e.what());
    return nullptr;
  }
  spdlog::warn("{}: not a JSON object; treating the run as unfinished", p.string());
  return nullptr;
}

// <run_dir>.stale-<N> for the first N not taken.
std::string move_aside(const std::string& run_dir) {
  for (int n = 1;; ++n) {
    const std::string to = fmt::format("{}.stale-{}", run_dir, n);
    std::error_code ec;
    if (fs::exists(to, ec)) continue;
    fs::rename(run_dir, to, ec);
    if (ec) fail("cannot move {} aside to {}: {}", run_dir, to, ec.message());
    return to;
  }
}

// The keys whose resolved value in `cfg` differs from the config the run in its directory was
// trained with ("train.lr: 0.01 -> 0.02"). A finished point stays skipped either way; the sweep
// warns, since its results row then describes a run of another config.
std::vector<std::string> changed_keys(const Config& cfg) {
  const std::string path = (fs::path(run_dir_of(cfg)) / "config.resolved.yaml").string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return {};
  std::vector<std::string> out;
  try {
    const Config was = load_config(path);
    // The run's file states the global batch it trained with, and grad_accum 0 (derived).
    if (stated_global_batch(was.train) != stated_global_batch(cfg.train)) {
      out.push_back(
          fmt::format("train.global_batch: {} -> {}", stated_global_batch(was.train), stated_global_batch(cfg.train)));
    }
    for (const ResolvedKey& now : cfg.resolved) {
      if (now.path == "run.name" || now.path == "train.global_batch" || now.path == "train.grad_accum") continue;
      for (const ResolvedKey& then : was.resolved) {
        if (then.path == now.path && then.value != now.value) {
          out.push_back(fmt::format("{}: {} -> {}", now.path, then.value, now.value));
        }
      }
    }
  } catch (const UserError& e) {
    out.push_back(fmt::format("(cannot compare with {}: {})", path, e.what()));
  }
  return out;
}

// What rank 0 judged from the point's run directory, the same on every rank (the other ranks never
// look: rank 0 may be writing there).
PointState agreed_state(Comm& job, const Config& cfg) {
  PointState st;
  if (job.rank() == 0) st = inspect_point(cfg);
  int64_t msg[2] = {static_cast<int64_t>(st.action), st.checkpoint_step};
  job.broadcast(msg, sizeof msg, 0);
  st.action = static_cast<PointState::Action>(msg[0]);
  st.checkpoint_step = msg[1];
  return st;
}

// Rank 0 moves a finished run without summary.json aside; every rank learns whether it could.
void move_aside_on_root(Comm& job, const std::string& sweep, const std::string& id, const Config& cfg) {
  std::string error;
  if (job.rank() == 0) {
    try {
      spdlog::warn("sweep {}: point {}: moved the old run directory to {}", sweep, id, move_aside(run_dir_of(cfg)));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (job.all_reduce_sum(error.empty() ? 0.0 : 1.0) == 0) return;
  throw UserError(job.rank() == 0 ? error : "rank 0 could not move the old run directory aside",
                  "move or remove the run directory by hand and run the sweep again");
}

// Trains one point on every rank (rank 0 reads its summary). The point's status is the same on
// every rank afterwards: failed if it failed on any of them.
void run_point(Comm& job, const SweepPlan& plan, size_t i, const SweepOptions& options, SweepOutcome& out) {
  const SweepPoint& p = plan.points[i];
  const Config& cfg = plan.configs[i];
  PointResult& r = out.results[i];
  const PointState st = agreed_state(job, cfg);
  spdlog::log(st.changed.empty() ? spdlog::level::info : spdlog::level::warn, "sweep {}: point {}/{} {} -> {}: {}",
              plan.file.name, i + 1, plan.points.size(), p.id, run_dir_of(cfg), st.describe());
  if (st.action == PointState::Action::Skip) {
    r.status = PointStatus::SkippedDone;
    r.summary = st.summary;  // rank 0's (the others do not need it)
    return;
  }
  TrainOptions to;
  to.handle_signals = options.handle_signals;
  to.command_hint = options.command_hint;
  to.allow_schedule_change = options.allow_schedule_change;
  to.on_step = options.on_step;
  if (st.action == PointState::Action::Resume) to.resume = "latest";
  try {
    if (st.action == PointState::Action::Rerun) move_aside_on_root(job, plan.file.name, p.id, cfg);
    const TrainSummary s = train(cfg, to);
    if (s.interrupted) {  // on every rank alike: the trainer agrees on a stop
      r.status = PointStatus::Interrupted;
      out.interrupted = true;
      return;
    }
    if (job.rank() == 0) {
      r.summary = read_summary(s.run_dir);
      if (r.summary.is_null()) fail("the run ended at step {} without writing summary.json", s.end_step);
    }
    r.status = PointStatus::Done;
    if (s.stop_requested) out.interrupted = true;  // the point completed; the sweep stops after it
  } catch (const std::exception& e) {
    r.status = PointStatus::Failed;
    r.error = e.what();
    spdlog::error("sweep {}: point {} failed: {}", plan.file.name, p.id, r.error);
  }
  if (job.all_reduce_sum(r.status == PointStatus::Failed ? 1.0 : 0.0) > 0 && r.status != PointStatus::Failed) {
    r.status = PointStatus::Failed;
    r.error = "failed on another rank (its message is in the log)";
  }
}

}  // namespace

const char* status_name(PointStatus s) {
  switch (s) {
    case PointStatus::Pending:
      return "pending";
    case PointStatus::Done:
      return "done";
    case PointStatus::SkippedDone:
      return "skipped-done";
    case PointStatus::Failed:
      return "failed";
    case PointStatus::Interrupted:
      return "interrupted";
  }
  return "?";
}

std::string PointState::describe() const {
  switch (action) {
    case Action::Run:
      return "run";
    case Action::Resume:
      return fmt::format("resume from its checkpoint at step {}", checkpoint_step);
    case Action::Skip:
      return changed.empty() ? "skip (done: summary.json)"
                             : fmt::format(
                                   "skip (done: summary.json), although its config has changed since "
                                   "it ran: {}; move its run directory away to run it again",
                                   fmt::join(changed, ", "));
    case Action::Rerun:
      return fmt::format(
          "run again from scratch (finished at step {} but summary.json is missing; "
          "the old run directory is moved aside)",
          checkpoint_step);
  }
  return "?";
}

PointState inspect_point(const Config& cfg) {
  const std::string run_dir = run_dir_of(cfg);
  PointState st;
  const nlohmann::json summary = read_summary(run_dir);
  if (!summary.is_null() && summary.value("completed", false) &&
      summary.value("steps", int64_t{-1}) >= cfg.train.max_steps) {
    st.action = PointState::Action::Skip;
    st.summary = summary;
    st.changed = changed_keys(cfg);
    return st;
  }
  const std::optional<CheckpointEntry> latest = latest_checkpoint((fs::path(run_dir) / "checkpoints").string());
  if (latest) {
    st.checkpoint_step = latest->step;
    st.action = latest->step < cfg.train.max_steps ? PointState::Action::Resume : PointState::Action::Rerun;
  }
  return st;
}

SweepOutcome run_sweep(const SweepPlan& plan, const SweepOptions& options) {
  AM_CHECK(plan.points.size() == plan.configs.size(), "{} points but {} configs", plan.points.size(),
           plan.configs.size());
  const std::unique_ptr<Comm> job = make_job_comm();  // under mpirun every rank runs every point
  SweepOutcome out;
  out.rank = job->rank();
  out.results.resize(plan.points.size());
  // Between points the first SIGINT/SIGTERM (on any rank) stops the sweep before the next point;
  // while a point trains, the trainer's own guard (nested in this one) counts it and stops that point.
  StopSignals signals(options.handle_signals);
  for (size_t i = 0; i < plan.points.size() && !out.interrupted; ++i) {
    if (job->all_reduce_sum(signals.requested() ? 1.0 : 0.0) > 0) {
      out.interrupted = true;
      break;
    }
    run_point(*job, plan, i, options, out);
  }
  out.csv_path = (fs::path(plan.dir) / "results.csv").string();
  out.md_path = (fs::path(plan.dir) / "results.md").string();
  if (job->rank() == 0) write_results(plan, out.results);  // rank 0 alone writes
  job->barrier();
  return out;
}

}  // namespace am

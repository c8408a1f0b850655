// autonomoe sweep SWEEP.yaml [--set key=value]... [--dry-run]
// Runs every point of a sweep file (docs/sweeps.md) that is not done yet, then writes and prints
// the results table. Exit code 1 when a point failed (the others still ran). Under mpirun every
// point runs on all ranks and rank 0 alone writes and prints the results (sweep/runner.h).
#include "cli/args.h"
#include "cli/commands.h"
#include "dist/launch.h"
#include "dist/rank_agreement.h"
#include "io/output_dir.h"
#include "sweep/results.h"
#include "sweep/runner.h"
#include "train/trainer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace am {
namespace {

const std::vector<FlagSpec> kFlags = {
    {"set", true, false,
     "override a key for every point, e.g. --set data.train=... (repeatable; wins over the sweep's "
     "set:, may not name a key the sweep varies)"},
    {"dry-run", false, false, "list the points, their overrides and run directories; run nothing"},
    {"allow-schedule-change", false, false,
     "resume points although their train.* keys (e.g. a raised max_steps) differ from their checkpoints' "
     "(each change is logged); refused otherwise"},
    {"help", false, false, "this help"},
};

const char* const kSynopsis = "SWEEP.yaml [--set key=value]... [--dry-run] [--allow-schedule-change]";

void print_dry_run(const SweepPlan& plan) {
  std::printf("sweep %s: %zu point%s from %s (base %s)\n", plan.file.name.c_str(), plan.points.size(),
              plan.points.size() == 1 ? "" : "s", plan.file.path.c_str(), plan.file.base.c_str());
  for (size_t i = 0; i < plan.points.size(); ++i) {
    const SweepPoint& p = plan.points[i];
    std::printf("\n[%zu] %s  (%s)\n    run dir:   %s\n    would:     %s\n    overrides:", i + 1, p.id.c_str(),
                p.origin.c_str(), run_dir_of(plan.configs[i]).c_str(),
                inspect_point(plan.configs[i]).describe().c_str());
    for (const std::string& o : p.overrides) std::printf(" %s", shell_quote(o).c_str());
    std::printf("\n");
  }
  std::printf("\nresults: %s/results.csv, results.md\nall %zu points are valid; nothing was run (--dry-run)\n",
              plan.dir.c_str(), plan.points.size());
}

// What every rank of an mpirun job must agree on before the sweep does anything: its options, its
// directory and every point (id and overrides). Ranks that disagree would run different points in
// turn and hang in a collective; they stop here instead, naming the first difference.
std::vector<RunFact> sweep_facts(const SweepPlan& plan, const Args& args) {
  std::vector<RunFact> facts;
  for (const char* flag : {"dry-run", "allow-schedule-change"}) {
    facts.push_back({fmt::format("whether --{} is given", flag), args.has(flag) ? "yes" : "no"});
  }
  facts.push_back({"the --set options", fmt::format("[{}]", fmt::join(args.sets(), " "))});
  facts.push_back({"sweep name", plan.file.name});
  facts.push_back({"sweep directory", plan.dir});
  facts.push_back({"sweep points", std::to_string(plan.points.size())});
  for (size_t i = 0; i < plan.points.size(); ++i) {
    const SweepPoint& p = plan.points[i];
    facts.push_back({fmt::format("sweep point {}", i + 1), fmt::format("{} ({})", p.id, fmt::join(p.overrides, " "))});
  }
  return facts;
}

}  // namespace

int cmd_sweep(int argc, char** argv) {
  // The sweep file is the one positional argument; the rest goes to the flag parser.
  std::string sweep_file;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      rest.push_back(argv[i]);
      if (a == "--set" && i + 1 < argc) rest.push_back(argv[++i]);
    } else if (sweep_file.empty()) {
      sweep_file = a;
    } else {
      throw UsageError(fmt::format("autonomoe sweep: unexpected argument '{}' (the sweep file is {})", a, sweep_file),
                       "give one sweep file; see `autonomoe sweep --help`");
    }
  }
  Args args("autonomoe sweep", kFlags, static_cast<int>(rest.size()), rest.data());
  if (args.has("help")) {
    std::fputs(usage_of("autonomoe sweep", kSynopsis, kFlags).c_str(), stdout);
    return 0;
  }
  if (sweep_file.empty()) {
    throw UsageError("autonomoe sweep: no sweep file given",
                     "autonomoe sweep configs/sweeps/tiny_dlow.yaml (see `autonomoe sweep --help`)");
  }

  const SweepPlan plan = plan_sweep(sweep_file, args.sets());
  require_ranks_agree(*make_job_comm(), sweep_facts(plan, args));  // under mpirun: before anything runs
  if (args.has("dry-run")) {
    if (make_job_comm()->rank() == 0) print_dry_run(plan);  // under mpirun: once
    return 0;
  }

  check_output_dir(plan.dir, "the sweep directory (run.out_dir/<sweep name>)");  // before any point runs
  SweepOptions opt;
  opt.allow_schedule_change = args.has("allow-schedule-change");
  opt.command_hint = "autonomoe sweep " + shell_quote(sweep_file);
  for (const std::string& s : args.sets()) opt.command_hint += " --set " + shell_quote(s);
  const SweepOutcome out = run_sweep(plan, opt);
  if (out.rank != 0) {  // under mpirun rank 0 reports; every rank has the same statuses
    const bool failed = std::any_of(out.results.begin(), out.results.end(),
                                    [](const PointResult& r) { return r.status == PointStatus::Failed; });
    return failed ? 1 : 0;
  }

  std::printf("\n%s\nresults: %s\n         %s\n", results_markdown(plan, out.results).c_str(), out.csv_path.c_str(),
              out.md_path.c_str());
  std::fflush(stdout);  // the table first, then the failures (stderr)
  std::vector<std::string> failed;
  for (size_t i = 0; i < plan.points.size(); ++i) {
    if (out.results[i].status == PointStatus::Failed) {
      failed.push_back(plan.points[i].id);
      std::fprintf(stderr, "point %s failed: %s\n", plan.points[i].id.c_str(), out.results[i].error.c_str());
    }
  }
  if (out.interrupted) {
    std::printf(
        "sweep interrupted; the running point wrote a checkpoint. Continue with the same "
        "command:\n  %s\n",
        opt.command_hint.c_str());
  }
  if (!failed.empty()) {
    std::fprintf(stderr, "error: %zu of %zu points failed: %s\n", failed.size(), plan.points.size(),
                 fmt::format("{}", fmt::join(failed, " ")).c_str());
    return 1;
  }
  return 0;
}

}  // namespace am

// autonomoe train --config FILE [--set key=value]... [--resume [RUN_DIR | CHECKPOINT_DIR]]
//                 [--allow-schedule-change]
#include "cli/args.h"
#include "cli/commands.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace am {
namespace fs = std::filesystem;
namespace {

const std::vector<FlagSpec> kFlags = {
    {"config", true, false, "YAML config file"},
    {"set", true, false, "override a key, e.g. --set train.lr=1e-3 (repeatable)"},
    {"resume", true, true,
     "continue the run: alone, from its newest complete checkpoint; or from a run or checkpoint dir"},
    {"allow-schedule-change", false, false,
     "with --resume: go on although train.* keys (max_steps, lr schedule, optimizer, global_batch) differ "
     "from the checkpoint's (each change is logged); refused otherwise"},
    {"help", false, false, "this help"},
};

// A --resume argument names a checkpoint directory (it has a manifest.json, or at least the
// files of one, so that verification can say what is missing) or a run directory (checkpoints/).
struct ResumeTarget {
  bool is_run;
  std::string path;
};

ResumeTarget resolve_resume(const std::string& value) {
  const fs::path p(value);
  if (fs::exists(p / "manifest.json") || fs::exists(p / "model.safetensors")) return {false, value};
  if (fs::exists(p / "checkpoints")) return {true, value};
  throw UserError(fmt::format("--resume {}: not a checkpoint directory (no manifest.json) nor a run "
                              "directory (no checkpoints/)",
                              value),
                  "pass runs/<name> or runs/<name>/checkpoints/step_<N>, or --resume alone with --config");
}

// AM_TEST_SIGNAL_IN_SETUP=<phase> ("data", "model"; TrainOptions::on_setup_phase): SIGTERM to this
// process right after that phase of the set-up, as a scheduler's signal arriving then would. Only
// for the CLI test of an interrupted set-up (tests/cli/hostile.sh), which cannot time it otherwise.
void signal_in_setup(const char* phase) {
  static const char* const want = std::getenv("AM_TEST_SIGNAL_IN_SETUP");
  if (want && std::strcmp(want, phase) == 0) std::raise(SIGTERM);
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Args args("autonomoe train", kFlags, argc, argv);
  if (args.has("help")) {
    std::fputs(usage_of("autonomoe train",
                        "--config FILE [--set key=value]... [--resume [DIR] [--allow-schedule-change]]", kFlags)
                   .c_str(),
               stdout);
    return 0;
  }
  TrainOptions opt;
  opt.allow_schedule_change = args.has("allow-schedule-change");
  if (opt.allow_schedule_change && !args.get("resume")) {
    throw UsageError("--allow-schedule-change only applies with --resume", "add --resume, or drop the flag");
  }
  Config cfg;
  const std::optional<std::string> resume = args.get("resume");
  if (resume && !resume->empty()) {
    const ResumeTarget target = resolve_resume(*resume);
    if (target.is_run) {
      const std::string& run = target.path;
      cfg = args.has("config") ? load_config(args.require("config"), args.sets())
                               : load_config((fs::path(run) / "config.resolved.yaml").string(), args.sets());
      opt.resume = "latest";
      if (fs::path(run_dir_of(cfg)) != fs::path(run)) {
        throw UserError(fmt::format("--resume {}: the config's run directory is {}", run, run_dir_of(cfg)),
                        "set run.name / run.out_dir to match, or resume without --config");
      }
    } else {
      cfg = args.has("config") ? load_config(args.require("config"), args.sets())
                               : load_checkpoint_config(target.path, args.sets());
      opt.resume = target.path;
    }
  } else {
    cfg = load_config(args.require("config"), args.sets());
    if (resume) opt.resume = "latest";
  }
  opt.command_hint = fmt::format("autonomoe train --config {} --resume", shell_quote(cfg.source_path));
  for (const std::string& s : args.sets()) opt.command_hint += " --set " + shell_quote(s);

  if (std::getenv("AM_TEST_SIGNAL_IN_SETUP")) opt.on_setup_phase = signal_in_setup;
  const TrainSummary s = train(cfg, opt);
  if (s.rank != 0) return 0;  // rank 0 reports for the whole job
  if (s.already_complete) {
    std::printf(
        "\nthe run is already complete at step %lld (train.max_steps %lld): nothing to train\n"
        "to train further, resume with a higher train.max_steps (--set train.max_steps=N) and "
        "--allow-schedule-change\n",
        static_cast<long long>(s.end_step), static_cast<long long>(cfg.train.max_steps));
    return 0;
  }
  if (s.interrupted && s.step_losses.empty()) {
    std::printf(
        "\ninterrupted before training started: nothing was trained or written; run the same "
        "command again to %s\n",
        opt.resume.empty() ? "start" : "resume");
    return 0;
  }
  const std::string val = std::isnan(s.final_val_loss)
                              ? "n/a"
                              : fmt::format("{:.4f} (ppl {:.2f})", s.final_val_loss, std::exp(s.final_val_loss));
  const std::string uni =
      std::isnan(s.unigram_entropy) ? "" : fmt::format(" | unigram entropy of the data {:.4f}", s.unigram_entropy);
  std::printf("\nsummary: steps %lld -> %lld | train loss %.4f | val loss %s%s | %.0f tokens/s | %.1f s training\n",
              static_cast<long long>(s.start_step), static_cast<long long>(s.end_step), s.final_train_loss, val.c_str(),
              uni.c_str(), s.tokens_per_s, s.seconds);
  std::printf("run directory: %s\ncheckpoint: %s\n", s.run_dir.c_str(),
              s.last_checkpoint.empty() ? "(none)" : s.last_checkpoint.c_str());
  if (s.interrupted) std::printf("interrupted; resume with: %s\n", opt.command_hint.c_str());
  return 0;
}

}  // namespace am

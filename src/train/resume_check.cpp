#include "train/resume_check.h"

#include "core/error.h"
#include "train/batch.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <algorithm>

namespace am {
namespace {

const ResolvedKey* find_resolved(const Config& cfg, const std::string& path) {
  for (const ResolvedKey& r : cfg.resolved) {
    if (r.path == path) return &r;
  }
  return nullptr;
}

// Keys under `prefix` whose values differ ("path: checkpoint A, config B"), but `skip`.
std::vector<std::string> differing(const Config& ckpt, const Config& now, const std::string& prefix,
                                   const std::vector<std::string>& skip) {
  std::vector<std::string> diffs;
  for (const ResolvedKey& b : now.resolved) {
    if (b.path.rfind(prefix, 0) != 0 || std::find(skip.begin(), skip.end(), b.path) != skip.end()) continue;
    const ResolvedKey* a = find_resolved(ckpt, b.path);
    const std::string then = a ? a->value : "(absent)";
    if (then != b.value) diffs.push_back(fmt::format("{}: checkpoint {}, config {}", b.path, then, b.value));
  }
  return diffs;
}

std::string list(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "\n    " + l;
  return s;
}

}  // namespace

std::vector<std::string> schedule_changes(const Config& ckpt, const Config& now) {
  // The micro-batch and the accumulation follow the layout; the global batch is compared as trained.
  std::vector<std::string> diffs =
      differing(ckpt, now, "train.", {"train.micro_batch_size", "train.grad_accum", "train.global_batch"});
  const int64_t then = stated_global_batch(ckpt.train), batch = stated_global_batch(now.train);
  if (then != batch) diffs.push_back(fmt::format("train.global_batch: checkpoint {}, config {}", then, batch));
  return diffs;
}

void check_resume_compatible(const Config& ckpt, const Config& now, const std::string& dir, bool allow_schedule_change,
                             bool log) {
  const std::vector<std::string> model = differing(ckpt, now, "model.", {});
  if (!model.empty()) {
    throw UserError(fmt::format("cannot resume from {}: the model differs from the config:{}", dir, list(model)),
                    "resume with the config the run was started with (it is in the run directory as "
                    "config.resolved.yaml)");
  }
  const std::vector<std::string> schedule = schedule_changes(ckpt, now);
  if (schedule.empty()) return;
  if (!allow_schedule_change) {
    throw UserError(fmt::format("cannot resume from {}: the training schedule differs from the checkpoint's "
                                "(the learning rate and the data of every later step would change):{}",
                                dir, list(schedule)),
                    "resume with the config the run was started with (config.resolved.yaml in the run "
                    "directory), or pass --allow-schedule-change (to `autonomoe train --resume` or `autonomoe "
                    "sweep`) to go on with the new values (docs/training.md, \"Checkpoints and resuming\")");
  }
  if (!log) return;
  for (const std::string& d : schedule) {
    spdlog::warn("resuming with a changed schedule (--allow-schedule-change): {}", d);
  }
}

}  // namespace am

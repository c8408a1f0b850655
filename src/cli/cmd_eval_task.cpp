// autonomoe eval --task FILE.jsonl: zero-shot multiple-choice accuracy of a checkpoint
// (docs/evaluation.md); cmd_eval (cmd_checkpoint.cpp) hands over when --task is given.
#include "backends/backend_factory.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "model/transformer.h"
#include "train/backend_check.h"
#include "train/checkpoint.h"
#include "train/task_eval.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

namespace am {

namespace {

// One task's result: a line, or (--json) one JSON object on a line.
void print_result(const Args& args, const std::string& dir, int64_t step, const TaskFile& task, const TaskResult& r,
                  double secs) {
  if (args.has("json")) {
    nlohmann::json j = task_result_json(r);
    j["checkpoint"] = dir;
    j["step"] = step;
    j["file"] = task.path;
    j["seconds"] = secs;
    std::puts(j.dump().c_str());
  } else {
    std::printf("checkpoint %s (step %lld) on %s: acc %.4f (%lld/%lld) | acc_norm %.4f (%lld/%lld) | %.2f s\n",
                dir.c_str(), static_cast<long long>(step), task.path.c_str(), r.acc, static_cast<long long>(r.correct),
                static_cast<long long>(r.examples), r.acc_norm, static_cast<long long>(r.correct_norm),
                static_cast<long long>(r.examples), secs);
  }
}

}  // namespace

int cmd_eval_task(const Args& args) {
  const std::string dir = args.require("checkpoint");
  Config cfg = load_checkpoint_config(dir, args.sets());
  // Router-free evaluation (AoE Table 1): a router-trained checkpoint scored by activation norms.
  const bool scorer_overridden = load_checkpoint_config(dir).model.moe.scorer.type != cfg.model.moe.scorer.type;
  check_task_eval_supported(cfg.model);
  const std::vector<std::string> paths = split_task_list(args.require("task"));
  if (paths.empty()) throw UsageError("--task: no task file given");
  if (args.has("samples") && paths.size() > 1) {
    throw UsageError(fmt::format("--samples writes one task's examples, but --task names {} files", paths.size()),
                     "evaluate one task file at a time with --samples");
  }
  std::vector<TaskFile> tasks;  // all read first: a bad file stops before any scoring
  for (const std::string& path : paths) tasks.push_back(read_task_file(path, args.integer("limit", 0, 0)));
  const auto tok = open_run_tokenizer(cfg, args.get("tokenizer").value_or(""));
  const int B = args.integer("batch", cfg.train.micro_batch_size, 1), T = cfg.data.seq_len;
  auto be = make_checked_backend(cfg.run);
  Transformer model(*be, cfg.model, B, T);
  const TrainerState st =
      load_checkpoint(dir, model.store(), nullptr, scorer_overridden ? UnusedTensors::Note : UnusedTensors::Refuse);
  for (const TaskFile& task : tasks) {
    const auto t0 = std::chrono::steady_clock::now();
    const TaskResult r = evaluate_task(model, task, *tok, tok->eot_token());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (const auto samples = args.get("samples")) write_task_samples(*samples, task, r);
    print_result(args, dir, st.step, task, r, secs);
  }
  return 0;
}

}  // namespace am

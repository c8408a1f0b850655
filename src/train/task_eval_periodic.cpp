#include "train/task_eval_periodic.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace am {

std::unique_ptr<PeriodicTaskEval> PeriodicTaskEval::from_config(const Config& cfg) {
  if (cfg.eval.tasks.empty()) return nullptr;
  check_task_eval_supported(cfg.model);
  const auto tok = open_run_tokenizer(cfg, "");
  auto out = std::make_unique<PeriodicTaskEval>();
  out->every_ = cfg.eval.task_every > 0 ? cfg.eval.task_every : cfg.eval.every;
  for (const std::string& path : split_task_list(cfg.eval.tasks)) {
    Task t{read_task_file(path, cfg.eval.task_limit), {}};
    t.requests = task_requests(t.file, *tok, tok->eot_token(), cfg.data.seq_len);
    out->tasks_.push_back(std::move(t));
  }
  return out;
}

void PeriodicTaskEval::maybe_run(Transformer& model, int64_t step, bool last, MetricsLog* metrics) const {
  if (!last && (every_ == 0 || step % every_ != 0)) return;
  for (const Task& t : tasks_) {
    const auto t0 = std::chrono::steady_clock::now();
    const TaskResult r = tally_task(t.file, score_requests(model, t.requests));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("step {:>6} | task {} | acc {:.4f} | acc_norm {:.4f} ({} examples, {:.2f} s)", step, r.name, r.acc,
                 r.acc_norm, r.examples, secs);
    if (metrics) {
      nlohmann::json rec = {{"type", "task"}, {"step", step}};
      rec.update(task_result_json(r));
      rec["seconds"] = secs;
      metrics->write(rec);
    }
  }
}

}  // namespace am

// Multiple-choice task evaluation during training (eval.tasks, eval.task_every, eval.task_limit):
// the task files are read and tokenized once at start-up (so a bad file stops the run before it
// trains), then scored on the training model at the configured steps, one metrics.jsonl record
// per task: {"type": "task", "step", "task", "acc", "acc_norm", "examples", ...}.
#pragma once

#include "train/metrics.h"
#include "train/task_eval.h"

#include <memory>

namespace am {

class PeriodicTaskEval {
 public:
  // Null when eval.tasks is empty. UserError for a bad task file, a missing tokenizer or a model
  // that cannot be scored (expert choice).
  static std::unique_ptr<PeriodicTaskEval> from_config(const Config& cfg);

  // Scores every task when `step` is due (eval.task_every, or eval.every when that is 0, and the
  // last step), logs a line per task, and writes the records to `metrics` (null: not rank 0). Every
  // rank calls it: the forward may exchange tokens between ranks.
  void maybe_run(Transformer& model, int64_t step, bool last, MetricsLog* metrics) const;

 private:
  struct Task {
    TaskFile file;
    std::vector<ScoreRequest> requests;
  };
  int every_ = 0;
  std::vector<Task> tasks_;
};

}  // namespace am

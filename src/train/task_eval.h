// Zero-shot multiple-choice evaluation (docs/evaluation.md): each choice of an example is scored by
// the log-likelihood the model gives its continuation tokens after the context, summed (acc: the
// argmax of the sums) and divided by the choice's length in UTF-8 bytes (acc_norm), as
// lm-evaluation-harness does.
#pragma once

#include "config/config.h"
#include "data/task_file.h"
#include "data/tokenizer.h"
#include "model/transformer.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace am {

// One scored sequence: `tokens` (at most T + 1 of them) whose last `n_cont` are the continuation.
// The model reads tokens[0 .. n-2] and predicts tokens[1 .. n-1]; the continuation's predictions
// are summed.
struct ScoreRequest {
  std::vector<int32_t> tokens;
  int n_cont = 0;
};

// The requests of a task, choice by choice, example by example. Tokenization as the harness does
// it: trailing whitespace of the context moves to the continuation " " + choice; the continuation's
// tokens are those of encode(context + continuation) after the first len(encode(context)); the
// sequence starts with the end-of-text token `eot` (as every training document does) and keeps
// its last T + 1 tokens (a long context is truncated on the left). UserError (naming the file,
// line and choice) when a continuation has no token or more than T.
std::vector<ScoreRequest> task_requests(const TaskFile& task, const Tokenizer& tok, int32_t eot, int T);

// The summed log-likelihood of each request's continuation: model.micro_batch() requests per
// forward pass (one per row; padding after a sequence and in unused rows is never scored).
std::vector<double> score_requests(Transformer& model, const std::vector<ScoreRequest>& requests);

struct TaskResult {
  std::string name;
  int64_t examples = 0, correct = 0, correct_norm = 0;
  double acc = 0, acc_norm = 0;
  std::vector<std::vector<double>> loglik;  // per example, per choice
  std::vector<int> pred, pred_norm;         // per example: the choice acc and acc_norm pick
};

// Tallies acc and acc_norm from the requests' log-likelihoods (in task_requests' order). Ties go
// to the lower choice, as numpy's argmax.
TaskResult tally_task(const TaskFile& task, const std::vector<double>& loglik);

// task_requests + score_requests + tally_task.
TaskResult evaluate_task(Transformer& model, const TaskFile& task, const Tokenizer& tok, int32_t eot);

// UserError when the model's selection is not causal (expert choice: a batch's examples would see
// each other, and a sequence its future); a warning when capacity drops make a token's experts
// depend on the other tokens of its micro-batch.
void check_task_eval_supported(const ModelConfig& model);

// The run's tokenizer: `override_path` when not empty, else the one named by the dataset.json beside
// data.train's shards (or data.val's). Opened and checked against model.vocab_size; UserError
// naming what to pass otherwise.
std::unique_ptr<Tokenizer> open_run_tokenizer(const Config& cfg, const std::string& override_path);

// {"task", "examples", "acc", "acc_norm", "correct", "correct_norm"}.
nlohmann::json task_result_json(const TaskResult& r);

// One line per example (`eval --samples FILE`): {"line", "label", "loglik", "bytes", "pred",
// "pred_norm"}, the log-likelihoods at full precision.
void write_task_samples(const std::string& path, const TaskFile& task, const TaskResult& r);

}  // namespace am

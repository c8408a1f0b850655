#include "train/task_eval.h"

#include "config/strategy.h"
#include "core/error.h"
#include "data/dataset_meta.h"
#include "io/atomic_file.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace am {

namespace {

// lm-evaluation-harness's encode_pair: the context's trailing whitespace moves to the continuation, whose
// tokens are the tail of encode(context + continuation) after len(encode(context)) tokens.
ScoreRequest request_of(const std::string& context, const std::string& choice, const Tokenizer& tok, int32_t eot, int T,
                        const TaskFile& task, const TaskExample& ex, size_t i) {
  std::string ctx = context, cont = " " + choice;               // lm-evaluation-harness's target_delimiter
  const size_t keep = ctx.find_last_not_of(" \t\n\r\f\v") + 1;  // Python's rstrip(); npos + 1 == 0
  cont = ctx.substr(keep) + cont;
  ctx.resize(keep);
  const std::vector<int32_t> whole = tok.encode(ctx + cont), ctx_enc = tok.encode(ctx);
  const int64_t n_cont = static_cast<int64_t>(whole.size()) - static_cast<int64_t>(ctx_enc.size());
  if (n_cont <= 0) {
    throw UserError(
        fmt::format("{}:{}: choice {} ('{}') adds no token to the context's tokens", task.path, ex.line, i, choice));
  }
  if (n_cont > T) {
    throw UserError(fmt::format("{}:{}: choice {} is {} tokens long, more than data.seq_len = {}", task.path, ex.line,
                                i, n_cont, T),
                    "evaluate with a longer data.seq_len (--set data.seq_len=N, at most model.max_seq_len)");
  }
  ScoreRequest r;
  r.tokens.reserve(whole.size() + 1);
  r.tokens.push_back(eot);
  r.tokens.insert(r.tokens.end(), whole.begin(), whole.end());
  if (r.tokens.size() > static_cast<size_t>(T) + 1) r.tokens.erase(r.tokens.begin(), r.tokens.end() - (T + 1));
  r.n_cont = static_cast<int>(n_cont);
  return r;
}

}  // namespace

std::vector<ScoreRequest> task_requests(const TaskFile& task, const Tokenizer& tok, int32_t eot, int T) {
  std::vector<ScoreRequest> out;
  for (const TaskExample& ex : task.examples) {
    for (size_t i = 0; i < ex.continuations.size(); ++i) {
      out.push_back(request_of(ex.contexts[i], ex.continuations[i], tok, eot, T, task, ex, i));
    }
  }
  return out;
}

std::vector<double> score_requests(Transformer& model, const std::vector<ScoreRequest>& requests) {
  const int B = model.micro_batch(), T = model.seq_len();
  const size_t BT = static_cast<size_t>(B) * static_cast<size_t>(T);
  std::vector<int32_t> inputs(BT), targets(BT);
  std::vector<double> losses, out(requests.size(), 0.0);
  for (size_t first = 0; first < requests.size(); first += static_cast<size_t>(B)) {
    std::fill(inputs.begin(), inputs.end(), 0);
    std::fill(targets.begin(), targets.end(), -1);
    const size_t rows = std::min(static_cast<size_t>(B), requests.size() - first);
    for (size_t r = 0; r < rows; ++r) {
      const ScoreRequest& q = requests[first + r];
      const size_t n = q.tokens.size() - 1;  // inputs
      AM_CHECK(n >= 1 && n <= static_cast<size_t>(T) && q.n_cont >= 1 && static_cast<size_t>(q.n_cont) <= n,
               "request of {} tokens, {} continuation, T {}", q.tokens.size(), q.n_cont, T);
      std::copy(q.tokens.begin(), q.tokens.end() - 1, inputs.begin() + static_cast<int64_t>(r * T));
      for (size_t j = n - static_cast<size_t>(q.n_cont); j < n; ++j) targets[r * T + j] = q.tokens[j + 1];
    }
    model.forward(inputs.data(), targets.data(), 0.0, &losses);
    for (size_t r = 0; r < rows; ++r) {
      const ScoreRequest& q = requests[first + r];
      const size_t n = q.tokens.size() - 1;
      double ll = 0;
      for (size_t j = n - static_cast<size_t>(q.n_cont); j < n; ++j) ll -= losses[r * T + j];
      out[first + r] = ll;
    }
  }
  for (MoeLayer* l : model.moe_layers()) l->reset_stats();  // evaluation is not training load
  return out;
}

TaskResult tally_task(const TaskFile& task, const std::vector<double>& loglik) {
  TaskResult r;
  r.name = task.name;
  size_t k = 0;
  for (const TaskExample& ex : task.examples) {
    std::vector<double> ll;
    int best = 0, best_norm = 0;
    double top_norm = 0;
    for (size_t i = 0; i < ex.continuations.size(); ++i, ++k) {
      AM_CHECK(k < loglik.size(), "{} log-likelihoods for task {}", loglik.size(), task.name);
      ll.push_back(loglik[k]);
      const double norm = loglik[k] / static_cast<double>(ex.continuations[i].size());  // UTF-8 bytes
      if (i == 0 || loglik[k] > ll[static_cast<size_t>(best)]) best = static_cast<int>(i);
      if (i == 0 || norm > top_norm) best_norm = static_cast<int>(i), top_norm = norm;
    }
    r.pred.push_back(best);
    r.pred_norm.push_back(best_norm);
    r.correct += best == ex.label;
    r.correct_norm += best_norm == ex.label;
    r.loglik.push_back(std::move(ll));
  }
  AM_CHECK(k == loglik.size(), "{} log-likelihoods for {} choices of task {}", loglik.size(), k, task.name);
  r.examples = static_cast<int64_t>(task.examples.size());
  r.acc = static_cast<double>(r.correct) / static_cast<double>(std::max<int64_t>(r.examples, 1));
  r.acc_norm = static_cast<double>(r.correct_norm) / static_cast<double>(std::max<int64_t>(r.examples, 1));
  return r;
}

TaskResult evaluate_task(Transformer& model, const TaskFile& task, const Tokenizer& tok, int32_t eot) {
  return tally_task(task, score_requests(model, task_requests(task, tok, eot, model.seq_len())));
}

void check_task_eval_supported(const ModelConfig& model) {
  const SelectorConfig& s = model.moe.selector;
  if (model.moe.dense()) return;
  const SelectorInfo& selector = selector_of(model.moe);
  if (!selector.causal) {
    throw UserError(fmt::format("multiple-choice scoring needs a causal model, but model.moe.selector.type is "
                                "{} (group: {}): a token's experts depend on the other tokens of its "
                                "group, later tokens and other examples included",
                                selector.name, s.group),
                    "evaluate a token-choice model (topk or topp); docs/evaluation.md");
  }
  if (selector.drops_tokens(model.moe)) {
    spdlog::warn(
        "model.moe.selector.capacity_factor is {}: capacity drops depend on the other examples of a "
        "micro-batch (and the padding); --set model.moe.selector.capacity_factor=0 scores each example "
        "on its own (docs/evaluation.md)",
        s.capacity_factor);
  }
}

std::unique_ptr<Tokenizer> open_run_tokenizer(const Config& cfg, const std::string& override_path) {
  std::string path = override_path;
  for (const std::string* glob : {&cfg.data.train, &cfg.data.val}) {
    if (!path.empty() || glob->empty()) continue;
    if (const auto meta = read_dataset_meta(*glob); meta && !meta->tokenizer.empty()) path = meta->tokenizer_path();
  }
  if (path.empty()) {
    throw UserError(fmt::format("no tokenizer: the run's data ({}) has no dataset.json naming one", cfg.data.train),
                    "pass the SentencePiece model the data was encoded with: --tokenizer FILE.model");
  }
  auto tok = std::make_unique<Tokenizer>(path);
  if (tok->vocab_size() > cfg.model.vocab_size || tok->eot_token() < 0) {
    throw UserError(
        fmt::format("tokenizer {} has {} tokens{}, but the model's vocabulary has {}", path, tok->vocab_size(),
                    tok->eot_token() < 0 ? " and no end-of-text (eos) token" : "", cfg.model.vocab_size),
        "use the tokenizer the model's training data was encoded with");
  }
  return tok;
}

nlohmann::json task_result_json(const TaskResult& r) {
  return {{"task", r.name},         {"examples", r.examples}, {"acc", r.acc},
          {"acc_norm", r.acc_norm}, {"correct", r.correct},   {"correct_norm", r.correct_norm}};
}

}  // namespace am

namespace am {

void write_task_samples(const std::string& path, const TaskFile& task, const TaskResult& r) {
  std::string text;
  for (size_t e = 0; e < task.examples.size(); ++e) {
    const TaskExample& ex = task.examples[e];
    std::vector<size_t> bytes;
    for (const std::string& c : ex.continuations) bytes.push_back(c.size());
    text += nlohmann::ordered_json{{"line", ex.line}, {"label", ex.label}, {"loglik", r.loglik[e]},
                                   {"bytes", bytes},  {"pred", r.pred[e]}, {"pred_norm", r.pred_norm[e]}}
                .dump() +
            "\n";
  }
  write_file_atomic(path, text);
}

}  // namespace am

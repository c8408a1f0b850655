// Cross-field rules: constraints that relate several keys. Checked after every key is valid on
// its own; each message names every key involved with its value and where it was set.
#include <fmt/format.h>

#include <algorithm>

#include "config/schema.h"

namespace am {

namespace {

using Msg = std::optional<std::string>;

// Whether a run name names a directory strictly inside run.out_dir: one or more '/'-separated
// names, none empty (no leading, trailing or doubled '/'), '.' or '..'.
bool run_name_stays_inside(const std::string& name) {
  size_t begin = 0;
  while (true) {
    const size_t end = std::min(name.find('/', begin), name.size());
    const std::string part = name.substr(begin, end - begin);
    if (part.empty() || part == "." || part == "..") return false;
    if (end == name.size()) return true;
    begin = end + 1;
  }
}

// The rules of the model's shape.
std::vector<CrossRule> model_rules() {
  return {
      {"model.d_model is a multiple of model.n_heads",
       [](const Config& c, const ShowKey& show) -> Msg {
         if (c.model.d_model % c.model.n_heads == 0) return std::nullopt;
         return fmt::format("{} must be divisible by {}", show("model.d_model"), show("model.n_heads"));
       }},
      {"the head dimension model.d_model / model.n_heads is even (RoPE rotates pairs)",
       [](const Config& c, const ShowKey& show) -> Msg {
         if (c.model.d_model % c.model.n_heads != 0 || c.model.head_dim() % 2 == 0) {
           return std::nullopt;
         }
         return fmt::format("the head dimension {} / {} = {} must be even for RoPE", show("model.d_model"),
                            show("model.n_heads"), c.model.head_dim());
       }},
      {"model.n_kv_heads, when not 0, is at most model.n_heads and divides it",
       [](const Config& c, const ShowKey& show) -> Msg {
         const int kv = c.model.n_kv_heads, h = c.model.n_heads;
         if (kv == 0 || (kv <= h && h % kv == 0)) return std::nullopt;
         return fmt::format("{} must be 0 (= n_heads) or a divisor of {}", show("model.n_kv_heads"),
                            show("model.n_heads"));
       }},
      {"model.moe.scorer.type is none exactly when model.moe.n_experts is 1 (a dense model)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const bool none = c.model.moe.scorer.type == "none";
         if (none == (c.model.moe.n_experts == 1)) return std::nullopt;
         return fmt::format(
             "{} does not go with {}: a dense model has n_experts: 1 and scorer.type: none; "
             "an MoE model has n_experts > 1 and a scorer such as router",
             show("model.moe.scorer.type"), show("model.moe.n_experts"));
       }},
  };
}

// The rules of the data and the training schedule.
std::vector<CrossRule> data_and_train_rules() {
  return {
      {"data.seq_len is at most model.max_seq_len",
       [](const Config& c, const ShowKey& show) -> Msg {
         if (c.data.seq_len <= c.model.max_seq_len) return std::nullopt;
         return fmt::format("{} must be <= {}", show("data.seq_len"), show("model.max_seq_len"));
       }},
      {"train.global_batch, when set, is a multiple of train.micro_batch_size (and of "
       "micro_batch_size x grad_accum when grad_accum is set too)",
       [](const Config& c, const ShowKey& show) -> Msg {
         const TrainConfig& t = c.train;
         if (t.global_batch == 0) return std::nullopt;
         if (t.global_batch % t.micro_batch_size != 0) {
           return fmt::format(
               "{} must be a multiple of {} (sequences per optimizer step = "
               "micro-batch x accumulation x data-parallel size)",
               show("train.global_batch"), show("train.micro_batch_size"));
         }
         if (t.grad_accum == 0 || int64_t{t.global_batch} % (int64_t{t.micro_batch_size} * t.grad_accum) == 0) {
           return std::nullopt;
         }
         return fmt::format(
             "{} must be a multiple of {} x {}: no number of processes gives that "
             "accumulation (leave train.grad_accum out: it is derived)",
             show("train.global_batch"), show("train.micro_batch_size"), show("train.grad_accum"));
       }},
      {"train.min_lr is at most train.lr",
       [](const Config& c, const ShowKey& show) -> Msg {
         if (c.train.min_lr <= c.train.lr) return std::nullopt;
         return fmt::format("{} must be <= {}", show("train.min_lr"), show("train.lr"));
       }},
      {"train.warmup_steps is at most train.max_steps",
       [](const Config& c, const ShowKey& show) -> Msg {
         if (c.train.warmup_steps <= c.train.max_steps) return std::nullopt;
         return fmt::format("{} must be <= {}", show("train.warmup_steps"), show("train.max_steps"));
       }},
  };
}

// The rules of the run: its name and where it runs.
std::vector<CrossRule> run_rules() {
  return {
      {"run.name is a relative path inside run.out_dir: names separated by '/', none of them empty, '.' or '..'",
       [](const Config& c, const ShowKey& show) -> Msg {
         if (run_name_stays_inside(c.run.name)) return std::nullopt;
         return fmt::format(
             "{} is not a directory inside run.out_dir: a run name is one or more names "
             "separated by '/' (tiny_lr3; a sweep's points are <sweep>/<point>), none of "
             "them empty, '.' or '..'",
             show("run.name"));
       }},
      {"run.precision fp64 requires run.backend cpu",
       [](const Config& c, const ShowKey& show) -> Msg {
         if (c.run.precision != "fp64" || c.run.backend == "cpu") return std::nullopt;
         return fmt::format("{} requires run.backend: cpu, but {}", show("run.precision"), show("run.backend"));
       }},
  };
}

// The rules in the order docs/configs.md lists them: model, data and train, run.
std::vector<CrossRule> make_rules() {
  std::vector<CrossRule> rules;
  for (auto group : {model_rules, data_and_train_rules, run_rules}) {
    for (CrossRule& rule : group()) rules.push_back(std::move(rule));
  }
  return rules;
}

}  // namespace

const std::vector<CrossRule>& config_rules() {
  static const std::vector<CrossRule> rules = [] {
    std::vector<CrossRule> r = make_rules();
    for (CrossRule& m : moe_rules()) r.push_back(std::move(m));
    return r;
  }();
  return rules;
}

}  // namespace am

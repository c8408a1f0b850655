// autonomoe validate --config FILE [--set key=value]...   check a config, print it and its sizes
// autonomoe config --docs                                  print docs/configs.md
#include "cli/args.h"
#include "cli/commands.h"
#include "config/strategy.h"
#include "model/model_info.h"
#include "train/batch.h"

#include <fmt/format.h>

#include <cstdio>

namespace am {
namespace {

const std::vector<FlagSpec> kValidateFlags = {
    {"config", true, false, "YAML config file"},
    {"set", true, false, "override a key (repeatable)"},
    {"help", false, false, "this help"},
};

const std::vector<FlagSpec> kConfigFlags = {
    {"docs", false, false, "print the markdown documentation of every key (docs/configs.md)"},
    {"help", false, false, "this help"},
};

std::string with_commas(int64_t x) {
  std::string s = std::to_string(x), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// How count_params counted the experts of one token (model/model_info.h).
std::string active_experts_note(const MoeConfig& m) {
  return m.dense() ? "the one dense FFN" : selector_of(m).per_token_note(m);
}

// The global batch and the accumulation per number of processes (train/batch.h).
std::string batch_summary(const Config& cfg) {
  const TrainConfig& tc = cfg.train;
  const int64_t global = stated_global_batch(tc);
  std::string s = fmt::format("batch: global {} sequences ({} tokens) per optimizer step, micro-batch {} per rank",
                              global, with_commas(global * cfg.data.seq_len), tc.micro_batch_size);
  if (tc.global_batch == 0) {
    return s + fmt::format(
                   "\n  (train.global_batch not set: {} x grad_accum on one process only; set it to run "
                   "on several)",
                   tc.micro_batch_size);
  }
  s += "\n  processes -> accumulation:";
  for (int dp : valid_data_parallel_sizes(tc, 1024))
    s += fmt::format(" {}->{}", dp, global / (int64_t{tc.micro_batch_size} * dp));
  return s + " (other numbers of processes do not divide the global batch)";
}

}  // namespace

int cmd_validate(int argc, char** argv) {
  Args args("autonomoe validate", kValidateFlags, argc, argv);
  if (args.has("help")) {
    std::fputs(usage_of("autonomoe validate", "--config FILE [--set key=value]...", kValidateFlags).c_str(), stdout);
    return 0;
  }
  const Config cfg = load_config(args.require("config"), args.sets());
  const ParamCounts pc = count_params(cfg.model);
  std::printf("%s\n", config_table(cfg).c_str());
  std::printf("parameters: %s total, %s active per token\n", with_commas(pc.total).c_str(),
              with_commas(pc.active).c_str());
  std::printf("  (active counts the embedding matrix twice, as input and LM head, and %s)\n",
              active_experts_note(cfg.model.moe).c_str());
  std::printf("%s\n", batch_summary(cfg).c_str());
  std::printf("%s: valid\n", cfg.source_path.c_str());
  return 0;
}

int cmd_config(int argc, char** argv) {
  Args args("autonomoe config", kConfigFlags, argc, argv);
  if (args.has("docs")) {
    std::fputs(config_docs_markdown().c_str(), stdout);
    return 0;
  }
  std::fputs(usage_of("autonomoe config", "--docs", kConfigFlags).c_str(), stdout);
  return args.has("help") ? 0 : 2;
}

}  // namespace am

// Commands that read a checkpoint:
//   autonomoe eval --checkpoint DIR [--data GLOB] [--batches N] [--set key=value]... [--json]
//   autonomoe eval --checkpoint DIR --task FILE.jsonl [--limit N] [--batch N] [--tokenizer FILE] ...
//   (cmd_eval_task.cpp) autonomoe export --checkpoint DIR --out DIR [--dtype float32|bfloat16] [--tokenizer FILE.model]
#include "backends/backend_factory.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "data/loader.h"
#include "dist/launch.h"
#include "io/output_dir.h"
#include "model/transformer.h"
#include "train/backend_check.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/export_tokenizer.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

namespace am {
namespace fs = std::filesystem;

// Log lines (warnings, notes) to stderr from here on, in the same format.
void log_to_stderr() {
  auto logger = spdlog::stderr_color_mt("stderr");
  logger->set_level(spdlog::default_logger()->level());
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
}

namespace {

const std::vector<FlagSpec> kEvalFlags = {
    {"checkpoint", true, false, "checkpoint directory (runs/<name>/checkpoints/step_<N>)"},
    {"data", true, false, "shard glob to evaluate on (default: the run's data.val)"},
    {"batches", true, false, "micro-batches to read (default: the run's eval.batches)"},
    {"set", true, false, "override a key of the checkpoint's config, e.g. run.backend=cpu"},
    {"json", false, false, "print the result as one JSON object (full precision) instead of a line"},
    {"task", true, false,
     "zero-shot multiple-choice accuracy on JSONL task files (comma-separated; docs/evaluation.md)"},
    {"limit", true, false, "--task: the first N examples only (default: all)"},
    {"batch", true, false, "--task: sequences per forward pass (default: the run's train.micro_batch_size)"},
    {"tokenizer", true, false, "--task: SentencePiece model (default: the one in the data's dataset.json)"},
    {"samples", true, false, "--task: also write each example's log-likelihoods and picks to this JSONL file"},
    {"help", false, false, "this help"},
};

const std::vector<FlagSpec> kExportFlags = {
    {"checkpoint", true, false, "checkpoint directory"},
    {"out", true, false, "output directory (model.safetensors + config.json)"},
    {"dtype", true, false, "float32 (default) or bfloat16"},
    {"tokenizer", true, false, "SentencePiece model to include (default: the one the run's dataset.json names)"},
    {"help", false, false, "this help"},
};

// `autonomoe eval --json`: one object, the doubles at full precision (they read back exactly).
std::string eval_json(const std::string& dir, int64_t step, const std::string& data, const EvalResult& r, double secs) {
  const nlohmann::json j = {
      {"checkpoint", dir},          {"step", step},       {"data", data},         {"loss", r.loss},
      {"perplexity", r.perplexity}, {"tokens", r.tokens}, {"batches", r.batches}, {"seconds", secs}};
  return j.dump();
}

// Under mpirun, eval and export run on rank 0 alone (one result, one writer); the others exit 0.
bool job_root() { return make_job_comm()->rank() == 0; }

// `export --out` must not be the checkpoint directory or lie inside it: export would overwrite the
// checkpoint's own model.safetensors and config.json, destroying it.
void refuse_out_inside_checkpoint(const std::string& dir, const std::string& out) {
  const auto resolved = [](const std::string& p, std::error_code& ec) {
    fs::path r = fs::weakly_canonical(p, ec);
    return r.filename().empty() ? r.parent_path() : r;  // no trailing '/'
  };
  std::error_code ec1, ec2;
  const fs::path c = resolved(dir, ec1), o = resolved(out, ec2);
  if (ec1 || ec2) return;  // the checkpoint's own checks report a path that cannot be resolved
  const auto [ci, oi] = std::mismatch(c.begin(), c.end(), o.begin(), o.end());
  if (ci != c.end()) return;
  throw UserError(fmt::format("--out {} is {}the checkpoint directory --checkpoint {}: exporting would "
                              "overwrite the checkpoint's files",
                              out, oi == o.end() ? "" : "inside ", dir),
                  "pass --out a directory outside the checkpoint, e.g. exports/<name>");
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Args args("autonomoe eval", kEvalFlags, argc, argv);
  if (args.has("help")) {
    std::fputs(usage_of("autonomoe eval",
                        "--checkpoint DIR [--data GLOB] [--batches N] [--json]\n"
                        "       autonomoe eval --checkpoint DIR --task FILE.jsonl [--limit N] [--json]",
                        kEvalFlags)
                   .c_str(),
               stdout);
    return 0;
  }
  if (!job_root()) return 0;
  if (args.has("json")) log_to_stderr();  // stdout holds the JSON alone
  for (const char* f : {"data", "batches", "limit", "batch", "tokenizer", "samples"}) {
    const bool task_flag = std::string(f) != "data" && std::string(f) != "batches";
    if (args.has(f) && task_flag != args.has("task")) {
      throw UsageError(fmt::format("--{} {} --task", f, task_flag ? "needs" : "does not go with"),
                       "`autonomoe eval --help` lists the options of each form");
    }
  }
  if (args.has("task")) return cmd_eval_task(args);
  const std::string dir = args.require("checkpoint");
  const Config cfg = load_checkpoint_config(dir, args.sets());
  // Router-free evaluation (AoE Table 1): a router-trained checkpoint scored by activation norms.
  const bool scorer_overridden = load_checkpoint_config(dir).model.moe.scorer.type != cfg.model.moe.scorer.type;
  const std::string data = args.get("data").value_or(cfg.data.val);
  if (data.empty()) {
    throw UsageError("the checkpoint's config has no data.val", "pass the shards with --data GLOB");
  }
  const int B = cfg.train.micro_batch_size, T = cfg.data.seq_len;
  DataLoader loader(data, B, T, false, cfg.run.seed, cfg.model.vocab_size);
  int batches = args.integer("batches", cfg.eval.batches, 1);
  const int avail = eval_batches_available(loader, B);
  if (batches > avail) {
    spdlog::warn("{} holds {} micro-batches of {}x{}; evaluating on {}", data, avail, B, T, std::max(avail, 1));
    batches = std::max(avail, 1);
  }
  auto be = make_checked_backend(cfg.run);
  Transformer model(*be, cfg.model, B, T);
  const TrainerState st =
      load_checkpoint(dir, model.store(), nullptr, scorer_overridden ? UnusedTensors::Note : UnusedTensors::Refuse);
  const auto t0 = std::chrono::steady_clock::now();
  const EvalResult r = evaluate(model, loader, batches);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (args.has("json")) {
    std::puts(eval_json(dir, st.step, data, r, secs).c_str());
  } else {
    std::printf("checkpoint %s (step %lld) on %s: loss %.7f | perplexity %.5f | %lld tokens | %.2f s\n", dir.c_str(),
                static_cast<long long>(st.step), data.c_str(), r.loss, r.perplexity, static_cast<long long>(r.tokens),
                secs);
  }
  return 0;
}

int cmd_export(int argc, char** argv) {
  Args args("autonomoe export", kExportFlags, argc, argv);
  if (args.has("help")) {
    std::fputs(usage_of("autonomoe export",
                        "--checkpoint DIR --out DIR [--dtype float32|bfloat16] [--tokenizer FILE.model]", kExportFlags)
                   .c_str(),
               stdout);
    return 0;
  }
  const std::string dir = args.require("checkpoint"), out = args.require("out");
  const std::string dtype = args.get("dtype").value_or("float32");
  if (dtype != "float32" && dtype != "bfloat16") {
    throw UsageError(fmt::format("--dtype {}: expected float32 or bfloat16", dtype));
  }
  if (!job_root()) return 0;
  check_output_dir(out, "--out");
  refuse_out_inside_checkpoint(dir, out);
  Config cfg = load_checkpoint_config(dir, {"run.backend=cpu"});
  const std::string tokenizer = find_export_tokenizer(cfg, args.get("tokenizer").value_or(""));
  auto be = make_backend("cpu", precision_from_name(cfg.run.precision), cfg.run.threads);
  Transformer model(*be, cfg.model, 1, 1);
  load_checkpoint(dir, model.store(), nullptr);
  export_weights(out, cfg, model.store(), dtype);
  if (!tokenizer.empty()) export_tokenizer(cfg, tokenizer, out);
  std::printf("exported %s -> %s (model.safetensors, config.json%s; %s)\n", dir.c_str(), out.c_str(),
              tokenizer.empty() ? "" : ", tokenizer.model, tokenizer_config.json, special_tokens_map.json",
              dtype.c_str());
  return 0;
}

}  // namespace am

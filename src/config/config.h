// The run configuration: every knob, named once, with its default. Loaded from YAML (with
// `extends:` and `--set key.path=value` overrides), validated against the schema in schema.cpp,
// and handed to the rest of the program as this plain struct. docs/configs.md lists every key.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace am {

struct RunConfig {
  std::string name;                // run.name: run directory name (default: the config file's stem)
  std::string out_dir = "runs";    // run.out_dir: parent of the run directory
  uint64_t seed = 1234;            // run.seed: initialisation and data shuffling
  std::string backend = "auto";    // run.backend: cpu | cuda | auto
  int threads = 0;                 // run.threads: CPU threads, 0 = OMP_NUM_THREADS or the cores (cpu/threads.h)
  std::string precision = "fp32";  // run.precision: fp32 | bf16 | fp64 (CPU only; for tests)
  double peak_tflops = 0;          // run.peak_tflops: the MFU's peak per device; 0 = the GPU table (train/flops.h)
};

// A coefficient that may change during training: piecewise constant in the step. In YAML a
// number, or a list of [step, value] pairs whose steps increase from 0 (AdaMoE anneals its
// balancing coefficient this way): [[0, 0.02], [1000, 1.0e-4]].
struct Schedule {
  std::vector<std::pair<int64_t, double>> points{{0, 0.0}};
  Schedule() = default;
  Schedule(double v) : points{{0, v}} {}  // NOLINT: a plain number is a constant schedule
  double at(int64_t step) const;          // the value of the last point with point.step <= step
  bool active() const;                    // some value is > 0
  bool operator==(const Schedule&) const = default;
};

struct ExpertConfig {
  std::string type = "swiglu";  // model.moe.expert.type: swiglu | factorized (W_g = W_down W_up)
  int d_low = 0;                // model.moe.expert.d_low: rank of the factorised W_g
  int d_wide = 0;               // model.moe.expert.d_wide: 0 = derived from d_ffn and d_low (AoE Eq. 5)
  int multiple_of = 1;          // model.moe.expert.multiple_of: rounding of a derived d_wide
};

struct ScorerConfig {
  std::string type = "router";      // model.moe.scorer.type: router | large_router | act_norm | none
  std::string node = "latent";      // model.moe.scorer.node (act_norm): latent | gate | up | act | glu | out
  std::string norm = "l2";          // model.moe.scorer.norm (act_norm): l2 | l1 | linf
  int d_hidden = 0;                 // model.moe.scorer.d_hidden (large_router): 0 = n_experts * expert.d_low
  std::string activation = "silu";  // model.moe.scorer.activation (large_router): silu | linear
};

struct SelectorConfig {
  std::string type = "topk";          // model.moe.selector.type: topk | topp | expert_choice
  int k = 2;                          // model.moe.selector.k: experts per token (topk, incl. null experts)
  std::string gate = "renormalized";  // model.moe.selector.gate (topk): renormalized | softmax_all
  double capacity_factor = 0;         // model.moe.selector.capacity_factor: topk 0 = dropless; expert_choice CF
  double p = 0.6;                     // model.moe.selector.p: top-p threshold
  bool renormalize = false;           // model.moe.selector.renormalize: top-p gates sum to 1
  int max_k = 0;                      // model.moe.selector.max_k: top-p cap, 0 = n_experts
  std::string group = "batch";        // model.moe.selector.group (expert_choice): batch | sequence
  int n_null = 0;                     // model.moe.selector.n_null: null experts (topk)
};

struct AuxConfig {
  Schedule load_balance = 0.01;               // model.moe.aux.load_balance: Switch balancing (alpha)
  Schedule null_load_balance = 0;             // model.moe.aux.null_load_balance: AdaMoE's, over n + n_null
  Schedule z_loss = 0;                        // model.moe.aux.z_loss: router z-loss (beta)
  Schedule entropy = 0;                       // model.moe.aux.entropy: confidence entropy (gamma)
  double bias_update_rate = 0;                // model.moe.aux.bias_update_rate: aux-loss-free balancing (u)
  std::string balance_scope = "micro_batch";  // model.moe.aux.balance_scope: micro_batch | data_parallel
};

struct MoeConfig {
  int n_experts = 8;  // model.moe.n_experts
  int d_ffn = 0;      // model.moe.d_ffn: expert hidden width (required)
  ExpertConfig expert;
  ScorerConfig scorer;
  SelectorConfig selector;
  AuxConfig aux;

  // True for scorer.type none: a dense model, one SwiGLU FFN (config/strategy.h: the scorer's trait).
  bool dense() const;

  // The width of an expert's hidden layer: d_ffn for swiglu; d_wide (given, or by AoE Eq. 5) for
  // factorized: d_wide = (3 d d_ffn - d_low d) / (d_low + 2 d), rounded to the nearest multiple_of.
  int hidden_width(int d_model) const;
};

// Tokens each expert takes under selector expert_choice from a group of `group_tokens` tokens:
// round(capacity_factor * group_tokens / n_experts), halves away from zero. The validator keeps
// it in [1, group_tokens] for the configured group (micro_batch_size * seq_len, or seq_len).
int64_t expert_choice_capacity(const MoeConfig& moe, int64_t group_tokens);

struct ModelConfig {
  int vocab_size = 0;           // model.vocab_size (required; must equal the data's)
  int d_model = 0;              // model.d_model (required)
  int n_layers = 0;             // model.n_layers (required)
  int n_heads = 0;              // model.n_heads (required)
  int n_kv_heads = 0;           // model.n_kv_heads: 0 = n_heads (grouped-query when smaller)
  int max_seq_len = 2048;       // model.max_seq_len
  double rope_theta = 10000.0;  // model.rope_theta
  double norm_eps = 1e-5;       // model.norm_eps
  bool tie_embeddings = false;  // model.tie_embeddings: LM head shares the embedding matrix
  double init_std = 0.02;       // model.init_std
  MoeConfig moe;

  int kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int head_dim() const { return d_model / n_heads; }
};

struct DataConfig {
  std::string train;    // data.train: shard glob, e.g. data/brown/brown_train_*.bin (required)
  std::string val;      // data.val: shard glob for validation ("" = none)
  int seq_len = 0;      // data.seq_len: tokens per training sequence (required)
  bool shuffle = true;  // data.shuffle: shuffle windows each epoch (seeded by run.seed)
};

struct TrainConfig {
  // The batch (train/batch.h derives the accumulation once the data-parallel size is known):
  int global_batch = 0;                // train.global_batch: sequences per optimizer step, all ranks together
                                       // (0 = not stated: micro_batch_size x grad_accum, one process only)
  int micro_batch_size = 0;            // train.micro_batch_size: sequences per micro-batch and rank (required)
  int grad_accum = 0;                  // train.grad_accum: 0 = derived; set: must equal the derived value
  int max_steps = 0;                   // train.max_steps (required)
  double lr = 0;                       // train.lr: peak learning rate (required)
  double min_lr = 0;                   // train.min_lr: floor the schedule decays to
  int warmup_steps = 0;                // train.warmup_steps: linear warm-up from 0
  std::string lr_schedule = "cosine";  // train.lr_schedule: cosine | linear | constant
  double weight_decay = 0.1;           // train.weight_decay: on matrices only
  double beta1 = 0.9;                  // train.beta1
  double beta2 = 0.95;                 // train.beta2
  double eps = 1e-8;                   // train.eps
  double grad_clip = 1.0;              // train.grad_clip: global-norm clip, 0 = off
};

struct LogConfig {
  int every = 10;           // log.every: steps between log lines / metrics records
  bool tensorboard = true;  // log.tensorboard: metrics.jsonl's records also as TensorBoard scalars
};

struct EvalConfig {
  int every = 0;       // eval.every: steps between validation passes, 0 = only at the end
  int batches = 20;    // eval.batches: micro-batches per validation pass
  std::string tasks;   // eval.tasks: comma-separated multiple-choice task files ("" = none)
  int task_every = 0;  // eval.task_every: steps between task evaluations, 0 = with eval.every
  int task_limit = 0;  // eval.task_limit: examples per task file, 0 = all
};

struct CheckpointConfig {
  int every = 0;              // checkpoint.every: steps between checkpoints, 0 = only at the end
  int keep_last = 3;          // checkpoint.keep_last: 0 = keep all
  bool save_initial = false;  // checkpoint.save_initial: also write step 0
};

struct DistConfig {
  int ep = 1;                 // dist.ep: expert-parallel size (divides the world size and n_experts)
  std::string comm = "auto";  // dist.comm: auto | single | mpi | nccl
  int zero = 0;               // dist.zero: 0 = off, 1 = ZeRO-1 (AdamW moments sharded over ranks)
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
  DistConfig dist;

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

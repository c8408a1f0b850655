// The schema table: every config key, once. See schema.h for what a row holds.
#include "config/schema.h"

#include <set>

#include "config/strategy.h"
#include "core/error.h"

namespace am {

KeySpec config_key(std::string path, std::string dflt, Range range, std::string doc, Binding field) {
  KeySpec k;
  k.path = std::move(path);
  k.required = dflt == kRequired;
  k.default_value = k.required ? "" : std::move(dflt);
  k.range = range;
  k.doc = std::move(doc);
  k.field = std::move(field);
  return k;
}

KeySpec config_enum_key(std::string path, std::string dflt, std::vector<std::string> choices, std::string doc,
                        Binding field) {
  KeySpec k = config_key(std::move(path), std::move(dflt), Range{}, std::move(doc), std::move(field));
  k.choices = std::move(choices);
  return k;
}

namespace {

const Range kAny{};
const Range kCount = at_least(1);   // counts of things: >= 1
const Range kCount0 = at_least(0);  // counts where 0 means "off" / "all" / "default"
const Range kPositive = greater_than(0);
const Range kBeta = closed_open(0, 1);

#define FIELD(member) AM_FIELD(member)

// ---- run ----
std::vector<KeySpec> run_keys() {
  return {
      config_key("run.name", "\"\"", kAny,
                 "run directory name under run.out_dir; empty = the config file's stem "
                 "(configs/tiny.yaml -> tiny)",
                 FIELD(run.name)),
      config_key("run.out_dir", "runs", kAny, "parent directory of run directories", FIELD(run.out_dir)),
      config_key("run.seed", "1234", kAny, "seed for initialisation and data shuffling", FIELD(run.seed)),
      config_enum_key("run.backend", "auto", {"cpu", "cuda", "auto"},
                      "compute backend; auto = cuda when a GPU is present, else cpu", FIELD(run.backend)),
      config_key("run.threads", "0", kCount0,
                 "CPU threads; 0 = OMP_NUM_THREADS when set, else all cores (shared among the ranks of a node)",
                 FIELD(run.threads)),
      config_enum_key("run.precision", "fp32", {"fp32", "bf16", "fp64"},
                      "fp32: everything fp32; bf16: fp32 master weights, optimizer state, gradients and "
                      "residual stream, saved activations stored in bf16, bf16 operands in every matrix "
                      "product (fp32 accumulate; emulated exactly on the CPU; docs/training.md); fp64: CPU "
                      "only (for tests)",
                      FIELD(run.precision)),
      config_key("run.peak_tflops", "0.0", at_least(0),
                 "one device's peak TFLOP/s, the denominator of the training log's MFU; 0 = from the table of "
                 "known GPUs by device name and run.precision (CUDA backend only: no MFU on the CPU unless set)",
                 FIELD(run.peak_tflops)),
  };
}

// ---- model, and the MoE layer's own keys (its strategies' keys come from strategy_keys()) ----
std::vector<KeySpec> model_keys() {
  return {
      config_key("model.vocab_size", kRequired, at_least(2), "vocabulary size; must equal the tokenizer's / data's",
                 FIELD(model.vocab_size)),
      config_key("model.d_model", kRequired, kCount, "residual stream width", FIELD(model.d_model)),
      config_key("model.n_layers", kRequired, kCount, "transformer blocks", FIELD(model.n_layers)),
      config_key("model.n_heads", kRequired, kCount, "attention (query) heads", FIELD(model.n_heads)),
      config_key("model.n_kv_heads", "0", kCount0, "key/value heads; 0 = n_heads, fewer = grouped-query attention",
                 FIELD(model.n_kv_heads)),
      config_key("model.max_seq_len", "2048", kCount, "longest sequence the model accepts", FIELD(model.max_seq_len)),
      config_key("model.rope_theta", "10000.0", kPositive, "RoPE base frequency", FIELD(model.rope_theta)),
      config_key("model.norm_eps", "1e-05", kPositive, "RMSNorm epsilon", FIELD(model.norm_eps)),
      config_key("model.tie_embeddings", "false", kAny, "the LM head shares the embedding matrix",
                 FIELD(model.tie_embeddings)),
      config_key("model.init_std", "0.02", kPositive, "standard deviation of the normal weight init",
                 FIELD(model.init_std)),
      config_key("model.moe.n_experts", "8", kCount, "experts per MoE layer; 1 = dense SwiGLU FFN",
                 FIELD(model.moe.n_experts)),
      config_key("model.moe.d_ffn", kRequired, kCount,
                 "hidden width of each SwiGLU expert; factorized experts match its parameter count",
                 FIELD(model.moe.d_ffn)),
  };
}

// ---- model.moe.aux keys that belong to no one strategy ----
std::vector<KeySpec> moe_common_keys() {
  return {
      config_key("model.moe.aux.bias_update_rate", "0.0", at_least(0),
                 "(topk) auxiliary-loss-free balancing (DeepSeek-V3): step of the per-expert selection "
                 "bias; 0 = off",
                 FIELD(model.moe.aux.bias_update_rate)),
      config_enum_key("model.moe.aux.balance_scope", "micro_batch", {"micro_batch", "data_parallel"},
                      "the tokens the load-balancing statistics (f, P) are over: micro_batch = each rank's "
                      "micro-batch; data_parallel = the micro-batches of all ranks at once (summed over "
                      "ranks), so the trajectory does not depend on how they are split over ranks "
                      "(docs/distributed.md)",
                      FIELD(model.moe.aux.balance_scope)),
  };
}

// ---- data ----
std::vector<KeySpec> data_keys() {
  return {
      config_key("data.train", kRequired, kAny, "training token shards (glob), e.g. data/brown/brown_train_*.bin",
                 FIELD(data.train)),
      config_key("data.val", "\"\"", kAny, "validation token shards (glob); empty = no validation", FIELD(data.val)),
      config_key("data.seq_len", kRequired, kCount, "tokens per training sequence", FIELD(data.seq_len)),
      config_key("data.shuffle", "true", kAny, "shuffle windows each epoch (seeded by run.seed)", FIELD(data.shuffle)),
  };
}

// ---- train ----
std::vector<KeySpec> train_keys() {
  return {
      config_key("train.global_batch", "0", kCount0,
                 "sequences per optimizer step, over all ranks together (the paper's batch); the "
                 "accumulation is derived at start-up: global_batch / (micro_batch_size x data-parallel "
                 "size, the number of processes). 0 = not stated: micro_batch_size x grad_accum, allowed "
                 "on one process only (docs/training.md)",
                 FIELD(train.global_batch)),
      config_key("train.micro_batch_size", kRequired, kCount,
                 "sequences per micro-batch on each rank: sets the memory and the expert-choice group; "
                 "must divide global_batch",
                 FIELD(train.micro_batch_size)),
      config_key("train.grad_accum", "0", kCount0,
                 "micro-batches per optimizer step on each rank: 0 = derived from global_batch (use "
                 "that); when set it must equal the derived value (start-up checks it), and without "
                 "global_batch it states global_batch = micro_batch_size x grad_accum on one process",
                 FIELD(train.grad_accum)),
      config_key("train.max_steps", kRequired, kCount, "optimizer steps to train for", FIELD(train.max_steps)),
      config_key("train.lr", kRequired, kPositive, "peak learning rate", FIELD(train.lr)),
      config_key("train.min_lr", "0.0", at_least(0), "learning rate the schedule decays to", FIELD(train.min_lr)),
      config_key("train.warmup_steps", "0", kCount0, "steps of linear warm-up from 0", FIELD(train.warmup_steps)),
      config_enum_key("train.lr_schedule", "cosine", {"cosine", "linear", "constant"},
                      "decay from lr to min_lr after warm-up", FIELD(train.lr_schedule)),
      config_key("train.weight_decay", "0.1", at_least(0), "AdamW weight decay (matrices only)",
                 FIELD(train.weight_decay)),
      config_key("train.beta1", "0.9", kBeta, "AdamW first-moment decay", FIELD(train.beta1)),
      config_key("train.beta2", "0.95", kBeta, "AdamW second-moment decay", FIELD(train.beta2)),
      config_key("train.eps", "1e-08", kPositive, "AdamW epsilon", FIELD(train.eps)),
      config_key("train.grad_clip", "1.0", at_least(0), "global gradient-norm clip; 0 = off", FIELD(train.grad_clip)),
  };
}

// ---- log / eval / checkpoint ----
std::vector<KeySpec> output_keys() {
  return {
      config_key("log.every", "10", kCount, "steps between log lines and metrics records", FIELD(log.every)),
      config_key("log.tensorboard", "true", kAny,
                 "also write metrics.jsonl's records as TensorBoard scalars to <run dir>/tensorboard/",
                 FIELD(log.tensorboard)),
      config_key("eval.every", "0", kCount0, "steps between validation passes; 0 = only at the end", FIELD(eval.every)),
      config_key("eval.batches", "20", kCount, "micro-batches per validation pass", FIELD(eval.batches)),
      config_key("eval.tasks", "\"\"", kAny,
                 "multiple-choice task files (JSONL, comma-separated) scored during training, results in "
                 "metrics.jsonl (docs/evaluation.md); empty = none",
                 FIELD(eval.tasks)),
      config_key("eval.task_every", "0", kCount0, "steps between task evaluations; 0 = at eval.every and at the end",
                 FIELD(eval.task_every)),
      config_key("eval.task_limit", "0", kCount0, "examples scored per task file; 0 = all", FIELD(eval.task_limit)),
      config_key("checkpoint.every", "0", kCount0, "steps between checkpoints; 0 = only at the end",
                 FIELD(checkpoint.every)),
      config_key("checkpoint.keep_last", "3", kCount0, "checkpoints kept on disk; 0 = keep all",
                 FIELD(checkpoint.keep_last)),
      config_key("checkpoint.save_initial", "false", kAny, "also write a checkpoint at step 0",
                 FIELD(checkpoint.save_initial)),
  };
}

// ---- dist ----
std::vector<KeySpec> dist_keys() {
  return {
      config_key("dist.ep", "1", kCount,
                 "expert-parallel size: each layer's experts split over groups of ep ranks (divides the "
                 "world size and n_experts; docs/distributed.md)",
                 FIELD(dist.ep)),
      config_enum_key("dist.comm", "auto", {"auto", "single", "mpi", "nccl"},
                      "communication: auto = nccl for cuda and mpi for cpu under mpirun, single otherwise",
                      FIELD(dist.comm)),
      config_key("dist.zero", "0", Range{0, 1, false, false},
                 "ZeRO stage: 0 = off; 1 = AdamW moments sharded over the data-parallel ranks (each rank "
                 "updates its shard, then the parameters are all-gathered; bit-identical results, any "
                 "backend and precision; docs/distributed.md). Stages 2 and 3 are not implemented",
                 FIELD(dist.zero)),
  };
}

std::vector<KeySpec> make_schema() {
  std::vector<KeySpec> keys;
  for (std::vector<KeySpec> part : {run_keys(), model_keys(), strategy_keys(), moe_common_keys(), data_keys(),
                                    train_keys(), output_keys(), dist_keys()}) {
    keys.insert(keys.end(), part.begin(), part.end());
  }
  return keys;
}

#undef FIELD

}  // namespace

const std::vector<std::pair<std::string, std::string>>& config_sections() {
  static const std::vector<std::pair<std::string, std::string>> sections = {
      {"run", "Where the run goes, seeds, backend and precision"},
      {"model", "The transformer and its MoE layers"},
      {"data", "Token shards and sequence length"},
      {"train", "Batch size, steps, optimizer and learning-rate schedule"},
      {"log", "Progress logging"},
      {"eval", "Validation passes"},
      {"checkpoint", "Checkpoint cadence and retention"},
      {"dist", "Multi-process runs (mpirun): expert parallelism, communication, ZeRO-1"},
  };
  return sections;
}

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = [] {
    std::vector<KeySpec> s = make_schema();
    // Invariants the printers rely on: unique paths, keys of one section contiguous, and the
    // top-level sections in config_sections() order.
    std::set<std::string> paths, closed;
    std::string current;
    size_t top = 0;
    for (const KeySpec& k : s) {
      AM_CHECK(paths.insert(k.path).second, "duplicate schema key {}", k.path);
      std::string sec = k.section();
      if (sec != current) {
        AM_CHECK(!closed.count(sec), "schema section {} is not contiguous", sec);
        closed.insert(current);
        current = sec;
      }
      std::string first = k.path.substr(0, k.path.find('.'));
      while (top < config_sections().size() && config_sections()[top].first != first) ++top;
      AM_CHECK(top < config_sections().size(), "schema key {} is out of section order", k.path);
    }
    return s;
  }();
  return schema;
}

std::string KeySpec::section() const { return path.substr(0, path.rfind('.')); }
std::string KeySpec::name() const { return path.substr(path.rfind('.') + 1); }

const KeySpec* find_key(const std::string& path) {
  for (const KeySpec& k : config_schema()) {
    if (k.path == path) return &k;
  }
  return nullptr;
}

bool is_section(const std::string& path) {
  for (const KeySpec& k : config_schema()) {
    if (k.path.size() > path.size() && k.path.compare(0, path.size(), path) == 0 && k.path[path.size()] == '.') {
      return true;
    }
  }
  return false;
}

}  // namespace am

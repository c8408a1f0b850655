// Test support: a synthetic token dataset and a small run config in a fresh temporary directory,
// for tests that train (determinism, bit-exact resume, gradient accumulation, checkpoints).
#pragma once

#include "config/config.h"
#include "data/synthetic.h"
#include "support/temp_dir.h"
#include "train/trainer.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace am::test {

// Options of a training run inside a test: no signal handlers (the test process owns them).
inline TrainOptions quiet_train() {
  TrainOptions o;
  o.handle_signals = false;
  return o;
}

// Writes <dir>/data/synth_{train,val}_000000.bin (+ dataset.json) and <dir>/run.yaml; returns
// the yaml's path.
// The YAML holds the run and data sections, then `model_and_train_yaml` (which must not repeat
// them: use --set style overrides for other run/data keys).
inline std::string make_synthetic_run(const TempDir& dir, const std::string& model_and_train_yaml, int vocab = 32,
                                      int64_t train_tokens = 20000, int seq_len = 16) {
  write_synthetic_dataset(dir / "data", "synth", vocab, train_tokens, 4000, 1);
  const std::string yaml = dir / "run.yaml";
  std::ofstream f(yaml);
  f << "run:\n  out_dir: " << (dir / "runs") << "\n  threads: 1\n"
    << "data:\n  train: " << (dir / "data/synth_train_*.bin") << "\n  val: " << (dir / "data/synth_val_*.bin")
    << "\n  seq_len: " << seq_len << "\n"
    << model_and_train_yaml;
  return yaml;
}

// A small MoE model and training section for make_synthetic_run (vocab 32).
inline const char* kSmallMoe = R"(model:
  vocab_size: 32
  d_model: 16
  n_layers: 2
  n_heads: 2
  max_seq_len: 16
  moe:
    n_experts: 4
    d_ffn: 24
    selector: {type: topk, k: 2}
    aux: {load_balance: 0.01, z_loss: 0.001}
train:
  global_batch: 4
  micro_batch_size: 4
  max_steps: 6
  lr: 0.01
  warmup_steps: 2
log:
  every: 1
eval:
  every: 3
  batches: 2
checkpoint:
  every: 3
  keep_last: 0
)";

inline std::vector<char> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

}  // namespace am::test

// The batch of an optimizer step (docs/training.md, "Batch"): a config states train.global_batch
// (sequences per optimizer step, all ranks together) and train.micro_batch_size (sequences per
// forward pass on one rank); the number of micro-batches each rank accumulates is derived here,
// once the data-parallel size is known:
//
//   accumulation = global_batch / (micro_batch_size x data-parallel size)
//
// The data-parallel size is the world size: every rank trains its own micro-batches, with expert
// parallelism (dist.ep) too (an EP group exchanges tokens, not batches). So a config keeps its
// global batch on 1, 8 or 16 processes.
#pragma once

#include "config/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace am {

struct BatchPlan {
  int64_t global = 0;     // sequences per optimizer step, all ranks together
  int micro = 0;          // sequences per micro-batch on one rank
  int dp = 1;             // data-parallel size (the world size)
  int accum = 1;          // micro-batches per optimizer step on each rank
  std::string dp_source;  // where dp comes from: "1 process", "2 processes under mpirun", ...
  bool stated = true;     // global came from train.global_batch (not micro x grad_accum)

  // "global batch 2048 sequences = micro-batch 8 x accumulation 32 x data-parallel 8 (8 processes ...)"
  std::string describe() const;
};

// The global batch a config states: train.global_batch, or when 0 micro_batch_size x grad_accum
// (grad_accum 0 counting as 1), the batch of one process.
int64_t stated_global_batch(const TrainConfig& tc);

// The batch on `dp` data-parallel ranks (`dp_source` says where that number comes from, for the
// messages). UserError naming global batch, micro-batch and data-parallel size (and grad_accum
// when set) when global_batch does not divide into micro-batches of every rank, when grad_accum
// is set and differs from the derived value, or when train.global_batch is not stated and dp > 1.
BatchPlan derive_batch(const Config& cfg, int dp, const std::string& dp_source);

// The data-parallel sizes up to `max_dp` under which the config's global batch divides (for
// `autonomoe validate`): the divisors of global_batch / micro_batch_size.
std::vector<int> valid_data_parallel_sizes(const TrainConfig& tc, int max_dp = 1 << 30);

// The config as the run trains it: train.global_batch set to the plan's global batch and
// train.grad_accum to 0 (derived), in the struct and in the resolved keys, so that
// config.resolved.yaml states the batch independently of the layout.
void set_batch(Config& cfg, const BatchPlan& plan);

}  // namespace am

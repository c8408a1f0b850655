// One optimizer step, exactly as training runs it (the trainer and the benchmark share it):
// zero the gradients, run `accum` micro-batches (train/batch.h derives it) forward and backward,
// the CE of each accumulated on the device, then the global gradient norm on the device, one
// read-back of both with the backend's update flag (the step's only host synchronisation outside
// the MoE layers: docs/training.md, "One read-back per step"), refuse a flag set by the previous
// update, a non-finite loss or norm, then clip + AdamW in one launch that reads the norm from the
// device, at the scheduled learning rate, then the auxiliary-loss-free bias updates. In a
// multi-process run the gradients are reduced (dist/grad_sync.h) before the norm is taken.
#pragma once

#include "dist/dist.h"
#include "model/transformer.h"
#include "train/optimizer.h"

#include <functional>

namespace am {

struct StepResult {
  double ce = 0;         // mean cross-entropy over the micro-batches
  double aux = 0;        // mean summed auxiliary loss
  double grad_norm = 0;  // before clipping
  double lr = 0;
};

// next_batch(inputs, targets) fills one micro-batch of B*T tokens each (host int32).
using BatchSource = std::function<void(int32_t* inputs, int32_t* targets)>;

// dist: gradients are reduced over the run's ranks before the norm (null: one process); the
// returned losses are then means over all ranks.
StepResult train_step(Transformer& model, AdamW& opt, const TrainConfig& tc, int64_t step, int accum,
                      const BatchSource& next_batch, const DistContext* dist = nullptr);

}  // namespace am

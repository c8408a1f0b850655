// What may change when a run is resumed (docs/training.md, "Checkpoints and resuming"): nothing of the model
// (model.* keys), and nothing of the training schedule (every train.* key but the per-rank
// micro-batch: steps, learning-rate schedule, optimizer settings and the global batch) unless the
// user allows it explicitly (`autonomoe train --allow-schedule-change`), in which case every
// change is logged as a warning. The micro-batch and the number of processes may change freely:
// they change the memory and the layout, not the step (train/batch.h).
#pragma once

#include "config/config.h"

#include <string>
#include <vector>

namespace am {

// The train.* keys whose value differs between a checkpoint's config and the one resuming it,
// as "train.max_steps: checkpoint 6, config 8" (the global batch as trained: a checkpoint
// written before train.global_batch existed counts micro_batch_size x grad_accum).
std::vector<std::string> schedule_changes(const Config& ckpt, const Config& now);

// UserError listing every differing model key (always), or every schedule change unless
// `allow_schedule_change`; with it, the changes are logged as warnings (when `log` is true: rank 0).
void check_resume_compatible(const Config& ckpt, const Config& now, const std::string& dir, bool allow_schedule_change,
                             bool log);

}  // namespace am

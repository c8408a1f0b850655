// What a training checkpoint holds and how it is written and read back. The mechanics (temporary
// directory, manifest with checksums, atomic rename, verification, pruning) are io/checkpoint_dir.
//
//   <run>/checkpoints/step_<N>/
//     model.safetensors      parameters under their export names (the run's dtype)
//     optimizer.safetensors  AdamW moments: <name>.exp_avg, <name>.exp_avg_sq
//     trainer_state.json     step, tokens, data-loader position, elapsed time
//     config.json            HF-style model config
//     config.resolved.yaml   the full resolved run config
//     manifest.json          sizes and XXH3-64 checksums of all of the above
#pragma once

#include "config/config.h"
#include "dist/dist.h"
#include "params/params.h"
#include "train/optimizer.h"
#include "train/trainer_state.h"

#include <nlohmann/json.hpp>

#include <string>

namespace am {

// Writes step_<state.step> under `root` (atomically); returns its path. `opt` may be null (weights
// only: the initial model, or an export). In a multi-process run every rank calls it (expert
// weights, and a ZeRO-1 optimizer's moment shards, are gathered to rank 0, which writes the whole
// model as one process would hold it, so the checkpoint loads on any layout, with ZeRO-1 or
// without); the other ranks write nothing.
std::string save_checkpoint(const std::string& root, const Config& cfg, const ParamStore& params, const AdamW* opt,
                            const TrainerState& state, const DistContext* dist = nullptr);

// Verifies the checkpoint (its manifest lists every file read here, with checksums that match;
// a corrupt checkpoint is reported as corrupt), then loads its weights into `params` (names, shapes and
// dtypes checked; F32 and F64 convert) and, when `opt` is given, the moments (a ZeRO-1 optimizer
// keeps its shard of them) and trainer state.
// Tensors the model lacks are an error (Refuse), or ignored: with a note in the log (Note:
// evaluating a router-trained model with another scorer ignores its router) or silently (Quiet:
// an expert-parallel rank takes its own experts from the whole model).
enum class UnusedTensors { Refuse, Note, Quiet };
TrainerState load_checkpoint(const std::string& dir, ParamStore& params, AdamW* opt,
                             UnusedTensors unused = UnusedTensors::Refuse);

// The config a checkpoint was written with (its config.resolved.yaml), with overrides applied. The
// checkpoint is verified first, so that a damaged one is reported as such, not as a bad config.
Config load_checkpoint_config(const std::string& dir, const std::vector<std::string>& overrides = {});

// Writes weights + config.json into `out_dir` (for other tools). dtype: "float32" or "bfloat16".
void export_weights(const std::string& out_dir, const Config& cfg, const ParamStore& params, const std::string& dtype);

}  // namespace am

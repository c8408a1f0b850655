// Gradient reduction of a multi-process run (docs/distributed.md). Each rank's loss is the mean
// over its own tokens and the objective is the mean over ranks, so:
//   dense parameters (replicated everywhere):  sum over all ranks, / world
//   expert weights (one copy per EP group):    sum over the replica group, / world
// (an expert's gradient already holds the contributions of every rank of its EP group, which sent
// it their tokens). Consecutive tensors of one kind are reduced in one call (buckets).
#pragma once

#include "dist/dist.h"
#include "model/params.h"

namespace am {

void reduce_gradients(ParamStore& store, const DistContext& dist);

// The L2 norm of the whole model's gradient: dense gradients (identical on every rank after the
// reduction) once, and every expert's once (summed over the EP group).
double global_grad_norm(ParamStore& store, const DistContext& dist);

}  // namespace am

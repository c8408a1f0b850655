// Gradient reduction of a multi-process run (docs/distributed.md). Each rank's loss is the mean
// over its own tokens and the objective is the mean over ranks, so:
//   dense parameters (replicated everywhere):  sum over all ranks, / world
//   expert weights (one copy per EP group):    sum over the replica group, / world
// (an expert's gradient already holds the contributions of every rank of its EP group, which sent
// it their tokens). Consecutive tensors of one kind are reduced in one call (buckets), and a
// layer's buckets start reducing as soon as the backward pass has finished that layer, while it
// goes on with the layers below (overlap; NCCL on its own stream, MPI non-blocking).
#pragma once

#include "dist/dist.h"
#include "params/params.h"

namespace am {

class GradReducer {
 public:
  GradReducer(ParamStore& store, const DistContext& dist);
  // Tensors [first, last] of the table hold their final gradients: start reducing them.
  void ready(int first, int last);
  // Reduce what has not started (embedding, final norm, LM head), wait for everything, and divide
  // by the world size. Then every rank holds the gradient of the mean loss.
  void finish();

 private:
  void start(int first, int last);
  ParamStore& store_;
  const DistContext& dist_;
  std::vector<char> started_;  // per tensor
};

// The L2 norm of the whole model's gradient: dense gradients (identical on every rank after the
// reduction) once, and every expert's once (summed over the EP group).
double global_grad_norm(ParamStore& store, const DistContext& dist);
// The same on the device, without a host read-back: norm_sq ((2) F64, zeroed by the caller) +=
// (dense, experts) sums of squares, bucket by bucket as global_grad_norm sums them, in one
// Backend::sum_squares_spans call over `spans` (grad_norm_spans of the store's table, on the
// device: AdamW::norm_spans), the experts' part then summed over the EP group with a device
// all-reduce; so sqrt(norm_sq[0] + norm_sq[1]) has global_grad_norm's bits. dist null: one
// process, one sum over all gradients into norm_sq[0], as AdamW::grad_norm computes it.
void global_grad_norm_sq(ParamStore& store, const DistContext* dist, Tensor norm_sq, Tensor spans);
// global_grad_norm's buckets as sum_squares_spans rows: dense into slot 0, experts into slot 1.
std::vector<SumSquaresSpan> grad_norm_spans(const ParamTable& t);

}  // namespace am

// Validation loss: the mean cross-entropy over the first `batches` micro-batches of a loader
// (reset to its start first, so every evaluation reads the same tokens).
#pragma once

#include "data/loader.h"
#include "model/transformer.h"

namespace am {

struct EvalResult {
  double loss = 0;        // mean cross-entropy (nats per token)
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;
  int batches = 0;
};

EvalResult evaluate(Transformer& model, DataLoader& loader, int batches);

// The number of micro-batches an evaluation can read without repeating a window.
int eval_batches_available(const DataLoader& loader, int B);

}  // namespace am

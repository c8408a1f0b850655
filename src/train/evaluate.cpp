#include "train/evaluate.h"

#include <cmath>
#include <vector>

namespace am {

EvalResult evaluate(Transformer& model, DataLoader& loader, int batches) {
  const int64_t n = static_cast<int64_t>(model.micro_batch()) * model.seq_len();
  std::vector<int32_t> inputs(static_cast<size_t>(n)), targets(static_cast<size_t>(n));
  loader.reset();
  EvalResult r;
  double sum = 0;
  for (int b = 0; b < batches; ++b) {
    loader.next(inputs.data(), targets.data());
    const LossParts lp = model.forward(inputs.data(), targets.data(), 0.0);
    sum += lp.ce * static_cast<double>(lp.targets);
    r.tokens += lp.targets;
  }
  r.batches = batches;
  r.loss = r.tokens > 0 ? sum / static_cast<double>(r.tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  for (MoeLayer* l : model.moe_layers()) l->reset_stats();  // evaluation is not training load
  return r;
}

int eval_batches_available(const DataLoader& loader, int B) { return static_cast<int>(loader.windows_per_epoch() / B); }

}  // namespace am

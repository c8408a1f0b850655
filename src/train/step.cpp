#include "train/step.h"

#include "dist/grad_sync.h"
#include "train/schedule.h"

#include <cmath>
#include <optional>
#include <vector>

namespace am {

StepResult train_step(Transformer& model, AdamW& opt, const TrainConfig& tc, int64_t step, int accum,
                      const BatchSource& next_batch, const DistContext* dist) {
  const size_t n = static_cast<size_t>(model.micro_batch()) * model.seq_len();
  std::vector<int32_t> inputs(n), targets(n);
  StepResult r;
  model.store().zero_grads();
  model.begin_step(step);
  const bool multi = dist && dist->world_size() > 1;
  std::optional<GradReducer> reducer;
  if (multi) reducer.emplace(model.store(), *dist);
  for (int micro = 0; micro < accum; ++micro) {
    next_batch(inputs.data(), targets.data());
    const LossParts lp = model.forward(inputs.data(), targets.data(), 1.0 / accum);
    opt.check_update_flag(lp.update_flag, step);  // did the last step's update leave finite values?
    const bool last = micro + 1 == accum;  // gradients are final in its backward
    model.backward(multi && last ? Transformer::GradsReady([&](int a, int b) { reducer->ready(a, b); })
                                 : Transformer::GradsReady());
    r.ce += lp.ce / accum;
    r.aux += lp.aux / accum;
  }
  if (multi) {
    reducer->finish();
    r.ce = dist->world->all_reduce_sum(r.ce) / dist->world_size();
    r.aux = dist->world->all_reduce_sum(r.aux) / dist->world_size();
  }
  r.grad_norm = dist ? global_grad_norm(model.store(), *dist) : opt.grad_norm();
  if (!std::isfinite(r.grad_norm) || !std::isfinite(r.ce)) {
    throw UserError(fmt::format("step {}: loss {} / gradient norm {} is not finite; stopping without "
                                "writing a checkpoint of the broken state", step + 1, r.ce, r.grad_norm),
                    "lower train.lr, raise train.warmup_steps or check the data; resume from the "
                    "last checkpoint with --resume");
  }
  r.lr = learning_rate(tc, step);
  opt.update(step, r.lr, r.grad_norm);
  model.end_step();
  return r;
}

}  // namespace am

#include "train/step.h"

#include "dist/grad_sync.h"
#include "train/schedule.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

namespace am {
namespace {

// The step's one device buffer, F64: [ce, grad norm^2 (dense), grad norm^2 (experts), flag, aux],
// read back once. The flag slot holds the backend's update flag in the compute dtype
// (copy_update_flag); aux is the sum over layers of the MoE auxiliary losses, averaged over the
// micro-batches like ce (Transformer::forward_accumulate).
struct StepStats {
  enum Slot { Ce, NormDense, NormExperts, Flag, Aux, kSlots };
  explicit StepStats(Backend& be) : be(be), buf(be, DType::F64, {kSlots}) { be.zero(buf); }
  Tensor slot(Slot s, int64_t n = 1) const { return Tensor(static_cast<double*>(buf.t().data) + s, DType::F64, {n}); }
  Tensor flag() const { return Tensor(static_cast<double*>(buf.t().data) + Flag, be.dtype(), {1}); }
  struct Host {
    double ce = 0, norm_dense = 0, norm_experts = 0, aux = 0;
    int flag = 0;
  };
  // The one host synchronisation of the step (outside the MoE layers).
  Host read() const {
    double h[kSlots];
    be.download(h, buf);
    int flag = 0;
    if (be.dtype() == DType::F64) {
      flag = static_cast<int>(h[Flag]);
    } else {
      float f;
      std::memcpy(&f, &h[Flag], sizeof f);
      flag = static_cast<int>(f);
    }
    return Host{h[Ce], h[NormDense], h[NormExperts], h[Aux], flag};
  }
  Backend& be;
  TensorBuf buf;
};

}  // namespace

StepResult train_step(Transformer& model, AdamW& opt, const TrainConfig& tc, int64_t step, int accum,
                      const BatchSource& next_batch, const DistContext* dist) {
  const size_t n = static_cast<size_t>(model.micro_batch()) * model.seq_len();
  std::vector<int32_t> inputs(n), targets(n);
  StepResult r;
  Backend& be = model.backend();
  model.store().zero_grads();
  model.begin_step(step);
  const StepStats stats(be);
  const bool multi = dist && dist->world_size() > 1;
  std::optional<GradReducer> reducer;
  if (multi) reducer.emplace(model.store(), *dist);
  for (int micro = 0; micro < accum; ++micro) {
    next_batch(inputs.data(), targets.data());
    model.forward_accumulate(inputs.data(), targets.data(), 1.0 / accum, accum, stats.slot(StepStats::Ce),
                             stats.slot(StepStats::Aux));
    const bool last = micro + 1 == accum;  // gradients are final in its backward
    model.backward(multi && last ? Transformer::GradsReady([&](int a, int b) { reducer->ready(a, b); })
                                 : Transformer::GradsReady());
  }
  if (multi) reducer->finish();
  global_grad_norm_sq(model.store(), dist, stats.slot(StepStats::NormDense, 2), opt.norm_spans());
  be.copy_update_flag(stats.flag());
  const StepStats::Host h = stats.read();
  opt.check_update_flag(h.flag, step);  // did the last step's update leave finite values?
  r.ce = h.ce;
  r.aux = h.aux;
  if (multi) {
    r.ce = dist->world->all_reduce_sum(r.ce) / dist->world_size();
    r.aux = dist->world->all_reduce_sum(r.aux) / dist->world_size();
  }
  r.grad_norm = std::sqrt(h.norm_dense + h.norm_experts);
  if (!std::isfinite(r.grad_norm) || !std::isfinite(r.ce)) {
    throw UserError(fmt::format("step {}: loss {} / gradient norm {} is not finite; stopping without "
                                "writing a checkpoint of the broken state",
                                step + 1, r.ce, r.grad_norm),
                    "lower train.lr, raise train.warmup_steps or check the data; resume from the "
                    "last checkpoint with --resume");
  }
  r.lr = learning_rate(tc, step);
  opt.update_device(step, r.lr, stats.slot(StepStats::NormDense, 2));
  model.end_step();
  return r;
}

}  // namespace am

#include "train/optimizer.h"

#include <cmath>

namespace am {

AdamW::AdamW(ParamStore& store, const TrainConfig& cfg) : store_(store), cfg_(cfg) {
  Backend& be = store.backend();
  m_ = TensorBuf(be, be.dtype(), {store.table().total()});
  v_ = TensorBuf(be, be.dtype(), {store.table().total()});
  be.zero(m_);
  be.zero(v_);
}

Tensor AdamW::view(const TensorBuf& b, int i) const {
  const ParamSpec& s = store_.table().at(i);
  return Tensor(static_cast<char*>(b.t().data) + static_cast<size_t>(s.offset) * dtype_size(b.t().dtype),
                b.t().dtype, s.shape);
}

double AdamW::grad_norm() const {
  return std::sqrt(store_.backend().sum_squares(store_.all_grads()));
}

void AdamW::update(int64_t step, double lr, double grad_norm) {
  AdamWStep s;
  s.lr = lr;
  s.beta1 = cfg_.beta1;
  s.beta2 = cfg_.beta2;
  s.eps = cfg_.eps;
  s.step = step + 1;
  // PyTorch's clip_grad_norm_: scale by clip / (norm + 1e-6) when that is below 1.
  s.grad_scale = 1.0;
  if (cfg_.grad_clip > 0) s.grad_scale = std::min(1.0, cfg_.grad_clip / (grad_norm + 1e-6));
  Backend& be = store_.backend();
  for (int i = 0; i < store_.table().size(); ++i) {
    if (!store_.table().at(i).trainable) continue;
    s.weight_decay = store_.table().at(i).decay ? cfg_.weight_decay : 0.0;
    be.adamw_update(store_.value(i), store_.grad(i), m(i), v(i), s);
  }
}

}  // namespace am

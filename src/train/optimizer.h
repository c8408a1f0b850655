// AdamW over the ParamStore, with global-norm gradient clipping (formulas in core/backend.h's
// AdamWStep and docs/training.md). The moments m and v are laid out like the parameters.
#pragma once

#include "config/config.h"
#include "core/tensor_buf.h"
#include "model/params.h"

namespace am {

class AdamW {
 public:
  AdamW(ParamStore& store, const TrainConfig& cfg);

  // The global L2 norm of all gradients (before clipping).
  double grad_norm() const;
  // One update with learning rate lr. step is 0-based (bias correction uses step + 1);
  // grad_norm is the value grad_norm() returned for these gradients.
  void update(int64_t step, double lr, double grad_norm);

  Tensor m(int i) const { return view(m_, i); }
  Tensor v(int i) const { return view(v_, i); }
  Tensor all_m() const { return m_; }
  Tensor all_v() const { return v_; }

 private:
  Tensor view(const TensorBuf& b, int i) const;
  ParamStore& store_;
  TrainConfig cfg_;
  TensorBuf m_, v_;  // (total)
};

}  // namespace am

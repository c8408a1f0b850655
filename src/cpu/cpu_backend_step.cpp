// CpuBackend: the ops of a training step that reads the device once (Backend, "a training step that reads the device
// once"): the loss and gradient-norm accumulators and the multi-tensor AdamW.
#include "cpu/cpu_backend.h"
#include "cpu/cpu_checks.h"
#include "cpu/ops_adamw.h"
#include "cpu/ops_elementwise.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace am {

using namespace am::cpu;

void CpuBackend::loss_sum_accumulate_impl(Tensor acc, Tensor losses, double denom, double divisor) {
  double sum = 0;  // in index order, as std::accumulate over the downloaded losses did
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    const T* x = losses.as<T>();
    for (int64_t i = 0; i < losses.numel(); ++i) sum += static_cast<double>(x[i]);
  });
  *acc.as<double>() += sum / denom / divisor;
}

void CpuBackend::sum_squares_accumulate_impl(Tensor acc, Tensor x) { *acc.as<double>() += sum_squares(x); }

void CpuBackend::sum_squares_spans_impl(Tensor acc, Tensor x, Tensor spans) {
  // The rows' contents are host data here, so they are checked too (the GPU cannot without a read-back).
  const auto* rows = static_cast<const SumSquaresSpan*>(spans.data);
  const size_t es = dtype_size(x.dtype);
  for (int64_t r = 0; r < spans.dim(0); ++r) {
    const SumSquaresSpan& sp = rows[r];
    AM_CHECK(
        sp.begin >= 0 && sp.numel >= 0 && sp.begin + sp.numel <= x.numel() && sp.slot >= 0 && sp.slot < acc.numel(),
        "sum_squares_spans: row {} (begin {}, numel {}, slot {}) outside x ({}) / acc ({})", r, sp.begin, sp.numel,
        sp.slot, x.numel(), acc.numel());
    const Tensor part(static_cast<char*>(x.data) + static_cast<size_t>(sp.begin) * es, x.dtype, {sp.numel});
    acc.as<double>()[sp.slot] += sum_squares(part);
  }
}

void CpuBackend::adamw_update_multi_impl(Tensor params, Tensor grads, Tensor m, Tensor v, Tensor chunks, Tensor norm_sq,
                                         double grad_clip, const AdamWStep& s) {
  const char* op = "adamw_update_multi";
  // The rows' contents are host data here, so they are checked too (the GPU cannot without a read-back).
  const auto* rows = static_cast<const AdamWChunk*>(chunks.data);
  const int64_t n_rows = chunks.dim(0);
  for (int64_t r = 0; r < n_rows; ++r) {
    const AdamWChunk& c = rows[r];
    AM_CHECK(c.numel >= 0 && c.param_at >= 0 && c.param_at + c.numel <= params.numel() && c.state_at >= 0 &&
                 c.state_at + c.numel <= m.numel() && c.tag > 0,
             "{}: row {} (param_at {}, state_at {}, numel {}, tag {}) outside params ({}) / moments ({})", op, r,
             c.param_at, c.state_at, c.numel, c.tag, params.numel(), m.numel());
  }
  // As AdamW::update computed it on the host before: the global norm, then PyTorch's clip factor.
  const double norm = std::sqrt(norm_sq.as<double>()[0] + norm_sq.as<double>()[1]);
  AdamWStep st = s;
  st.grad_scale = grad_clip > 0 ? std::min(1.0, grad_clip / (norm + 1e-6)) : 1.0;
  enter();
  int bad_tag = std::numeric_limits<int>::max();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t r = 0; r < n_rows; ++r) {
      const AdamWChunk& c = rows[r];
      st.weight_decay = c.decay ? s.weight_decay : 0.0;
      const bool finite = cpu::adamw_update<T>(params.as<T>() + c.param_at, grads.as<T>() + c.param_at,
                                               m.as<T>() + c.state_at, v.as<T>() + c.state_at, c.numel, st);
      if (!finite) bad_tag = std::min(bad_tag, static_cast<int>(c.tag));
    }
  });
  if (update_flag_ == 0 && bad_tag != std::numeric_limits<int>::max()) update_flag_ = bad_tag;
}

}  // namespace am

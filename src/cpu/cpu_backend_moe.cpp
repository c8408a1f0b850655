// CpuBackend: row-softmax helpers, routing and the optimizer.
#include "cpu/cpu_backend.h"
#include "cpu/cpu_checks.h"
#include "cpu/ops_adamw.h"
#include "cpu/ops_routing.h"
#include "cpu/ops_softmax.h"

namespace am {

using namespace am::cpu;

// ---- row softmax helpers ----

void CpuBackend::softmax_rows_impl(Tensor p, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::softmax_rows<T>(p.as<T>(), z.as<T>(), N, n);
  });
}

void CpuBackend::softmax_rows_backward_impl(Tensor dz, Tensor dp, Tensor p) {
  const int64_t N = row_count(p), n = last_dim(p);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::softmax_rows_backward<T>(dz.as<T>(), dp.as<T>(), p.as<T>(), N, n);
  });
}

void CpuBackend::logsumexp_rows_impl(Tensor out, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::logsumexp_rows<T>(out.as<T>(), z.as<T>(), N, n);
  });
}

void CpuBackend::axpy_rows_impl(Tensor y, Tensor x, Tensor s, double alpha) {
  const int64_t N = row_count(y), n = last_dim(y);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::axpy_rows<T>(y.as<T>(), x.as<T>(), s.as<T>(), alpha, N, n);
  });
}

std::vector<double> CpuBackend::column_sums_impl(Tensor x) {
  const int64_t N = row_count(x), n = last_dim(x);
  enter();
  std::vector<double> out;
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    out = cpu::column_sums<T>(x.as<T>(), N, n);
  });
  return out;
}

void CpuBackend::add_to_rows_impl(Tensor x, const std::vector<double>& v) {
  const int64_t n = static_cast<int64_t>(v.size()), N = row_count(x);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::add_to_rows<T>(x.as<T>(), v.data(), N, n);
  });
}

// ---- routing ----

int64_t CpuBackend::route_build_impl(Tensor assign_slot, Tensor slot_assign, std::vector<int64_t>& expert_offsets,
                                     Tensor slot_expert, int n_experts) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  return cpu::route_build(assign_slot.as<int32_t>(), assign_slot.numel(), slot_assign.as<int32_t>(), expert_offsets,
                          slot_expert.as<int32_t>(), N, kmax, n_experts);
}

void CpuBackend::gather_rows_impl(Tensor out, Tensor x, Tensor assign_slot, int kmax) {
  const int64_t A = row_count(out), d = last_dim(out), N = row_count(x);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::gather_rows<T>(out.as<T>(), x.as<T>(), assign_slot.as<int32_t>(), A, N, kmax, d);
  });
}

void CpuBackend::combine_impl(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) {
  const int64_t N = row_count(y), d = last_dim(y), A = row_count(expert_out), kmax = last_dim(slot_assign);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::combine<T>(y.as<T>(), expert_out.as<T>(), slot_gate.as<T>(), slot_assign.as<int32_t>(), N, kmax, A, d);
  });
}

void CpuBackend::combine_backward_impl(Tensor dexpert_out, Tensor dslot_gate, Tensor dy, Tensor expert_out,
                                       Tensor slot_gate, Tensor slot_assign) {
  const int64_t N = row_count(dy), d = last_dim(dy), A = row_count(expert_out), kmax = last_dim(slot_assign);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::combine_backward<T>(dexpert_out.as<T>(), dslot_gate.as<T>(), dy.as<T>(), expert_out.as<T>(), slot_gate.as<T>(),
                             slot_assign.as<int32_t>(), N, kmax, A, d);
  });
}

void CpuBackend::scatter_rows_add_impl(Tensor dx, Tensor src, Tensor slot_assign) {
  const int64_t N = row_count(dx), d = last_dim(dx), A = row_count(src), kmax = last_dim(slot_assign);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::scatter_rows_add<T>(dx.as<T>(), src.as<T>(), slot_assign.as<int32_t>(), N, kmax, A, d);
  });
}

// ---- optimizer ----

void CpuBackend::adamw_update_impl(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWStep& s) {
  const int64_t n = param.numel();
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    const bool finite = cpu::adamw_update<T>(param.as<T>(), grad.as<T>(), m.as<T>(), v.as<T>(), n, s);
    if (!finite && update_flag_ == 0) update_flag_ = s.tag;
  });
}

void CpuBackend::copy_update_flag_impl(Tensor dst) {
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    *dst.as<T>() = static_cast<T>(update_flag_);
  });
}

}  // namespace am

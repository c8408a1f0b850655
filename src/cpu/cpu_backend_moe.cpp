// CpuBackend: row-softmax helpers, routing and the optimizer.
#include "cpu/cpu_backend.h"
#include "cpu/cpu_checks.h"
#include "cpu/ops_adamw.h"
#include "cpu/ops_routing.h"
#include "cpu/ops_softmax.h"

namespace am {

using namespace am::cpu;

// ---- row softmax helpers ----

void CpuBackend::softmax_rows(Tensor p, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  check_matrix("softmax_rows", "z", z, dtype_, N, n);
  check_matrix("softmax_rows", "p", p, dtype_, N, n);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::softmax_rows<T>(p.as<T>(), z.as<T>(), N, n);
  });
}

void CpuBackend::softmax_rows_backward(Tensor dz, Tensor dp, Tensor p) {
  const int64_t N = row_count(p), n = last_dim(p);
  check_matrix("softmax_rows_backward", "p", p, dtype_, N, n);
  check_matrix("softmax_rows_backward", "dp", dp, dtype_, N, n);
  check_matrix("softmax_rows_backward", "dz", dz, dtype_, N, n);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::softmax_rows_backward<T>(dz.as<T>(), dp.as<T>(), p.as<T>(), N, n);
  });
}

void CpuBackend::logsumexp_rows(Tensor out, Tensor z) {
  const int64_t N = row_count(z), n = last_dim(z);
  check_matrix("logsumexp_rows", "z", z, dtype_, N, n);
  check_numel("logsumexp_rows", "out", out, dtype_, N);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::logsumexp_rows<T>(out.as<T>(), z.as<T>(), N, n);
  });
}

void CpuBackend::axpy_rows(Tensor y, Tensor x, Tensor s, double alpha) {
  const int64_t N = row_count(y), n = last_dim(y);
  check_matrix("axpy_rows", "y", y, dtype_, N, n);
  check_matrix("axpy_rows", "x", x, dtype_, N, n);
  check_numel("axpy_rows", "s", s, dtype_, N);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::axpy_rows<T>(y.as<T>(), x.as<T>(), s.as<T>(), alpha, N, n);
  });
}

std::vector<double> CpuBackend::column_sums(Tensor x) {
  const int64_t N = row_count(x), n = last_dim(x);
  check_matrix("column_sums", "x", x, dtype_, N, n);
  enter();
  std::vector<double> out;
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    out = cpu::column_sums<T>(x.as<T>(), N, n);
  });
  return out;
}

void CpuBackend::add_to_rows(Tensor x, const std::vector<double>& v) {
  const int64_t n = static_cast<int64_t>(v.size()), N = row_count(x);
  check_matrix("add_to_rows", "x", x, dtype_, N, n);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::add_to_rows<T>(x.as<T>(), v.data(), N, n);
  });
}

// ---- routing ----

int64_t CpuBackend::route_build(Tensor assign_slot, Tensor slot_assign,
                                std::vector<int64_t>& expert_offsets, Tensor slot_expert,
                                int n_experts) {
  const int64_t N = row_count(slot_expert), kmax = last_dim(slot_expert);
  check_matrix("route_build", "slot_expert", slot_expert, DType::I32, N, kmax);
  check_matrix("route_build", "slot_assign", slot_assign, DType::I32, N, kmax);
  check_dtype("route_build", "assign_slot", assign_slot, DType::I32);
  AM_CHECK(n_experts >= 1, "route_build: {} experts", n_experts);
  return cpu::route_build(assign_slot.as<int32_t>(), assign_slot.numel(), slot_assign.as<int32_t>(),
                          expert_offsets, slot_expert.as<int32_t>(), N, kmax, n_experts);
}

void CpuBackend::gather_rows(Tensor out, Tensor x, Tensor assign_slot, int kmax) {
  const int64_t A = row_count(out), d = last_dim(out), N = row_count(x);
  check_matrix("gather_rows", "out", out, dtype_, A, d);
  check_matrix("gather_rows", "x", x, dtype_, N, d);
  check_dtype("gather_rows", "assign_slot", assign_slot, DType::I32);
  AM_CHECK(assign_slot.numel() >= A && kmax >= 1,
           "gather_rows: assign_slot {} holds fewer than A = {} entries, or kmax = {} < 1",
           assign_slot.shape_str(), A, kmax);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::gather_rows<T>(out.as<T>(), x.as<T>(), assign_slot.as<int32_t>(), A, N, kmax, d);
  });
}

void CpuBackend::combine(Tensor y, Tensor expert_out, Tensor slot_gate, Tensor slot_assign) {
  const int64_t N = row_count(y), d = last_dim(y), A = row_count(expert_out),
                kmax = last_dim(slot_assign);
  check_matrix("combine", "expert_out", expert_out, dtype_, A, d);
  check_matrix("combine", "slot_assign", slot_assign, DType::I32, N, kmax);
  check_matrix("combine", "slot_gate", slot_gate, dtype_, N, kmax);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::combine<T>(y.as<T>(), expert_out.as<T>(), slot_gate.as<T>(), slot_assign.as<int32_t>(), N,
                    kmax, A, d);
  });
}

void CpuBackend::combine_backward(Tensor dexpert_out, Tensor dslot_gate, Tensor dy,
                                  Tensor expert_out, Tensor slot_gate, Tensor slot_assign) {
  const int64_t N = row_count(dy), d = last_dim(dy), A = row_count(expert_out),
                kmax = last_dim(slot_assign);
  check_matrix("combine_backward", "dy", dy, dtype_, N, d);
  check_matrix("combine_backward", "expert_out", expert_out, dtype_, A, d);
  check_matrix("combine_backward", "dexpert_out", dexpert_out, dtype_, A, d);
  check_matrix("combine_backward", "slot_assign", slot_assign, DType::I32, N, kmax);
  check_matrix("combine_backward", "slot_gate", slot_gate, dtype_, N, kmax);
  check_matrix("combine_backward", "dslot_gate", dslot_gate, dtype_, N, kmax);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::combine_backward<T>(dexpert_out.as<T>(), dslot_gate.as<T>(), dy.as<T>(),
                             expert_out.as<T>(), slot_gate.as<T>(), slot_assign.as<int32_t>(), N,
                             kmax, A, d);
  });
}

void CpuBackend::scatter_rows_add(Tensor dx, Tensor src, Tensor slot_assign) {
  const int64_t N = row_count(dx), d = last_dim(dx), A = row_count(src),
                kmax = last_dim(slot_assign);
  check_matrix("scatter_rows_add", "src", src, dtype_, A, d);
  check_matrix("scatter_rows_add", "slot_assign", slot_assign, DType::I32, N, kmax);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::scatter_rows_add<T>(dx.as<T>(), src.as<T>(), slot_assign.as<int32_t>(), N, kmax, A, d);
  });
}

// ---- optimizer ----

void CpuBackend::adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWStep& s) {
  const int64_t n = param.numel();
  check_numel("adamw_update", "param", param, dtype_, n);
  check_numel("adamw_update", "grad", grad, dtype_, n);
  check_numel("adamw_update", "m", m, dtype_, n);
  check_numel("adamw_update", "v", v, dtype_, n);
  AM_CHECK(s.tag > 0, "adamw_update tag {} (must be > 0)", s.tag);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    const bool finite = cpu::adamw_update<T>(param.as<T>(), grad.as<T>(), m.as<T>(), v.as<T>(), n, s);
    if (!finite && update_flag_ == 0) update_flag_ = s.tag;
  });
}

void CpuBackend::copy_update_flag(Tensor dst) {
  check_numel("copy_update_flag", "dst", dst, dtype_, 1);
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    *dst.as<T>() = static_cast<T>(update_flag_);
  });
}

}  // namespace am

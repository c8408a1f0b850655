// CpuBackend: construction, memory, dense math, embedding, RMSNorm, RoPE, attention, SiLU /
// SwiGLU and cross-entropy. The routing, softmax helpers and the optimizer are in
// cpu_backend_moe.cpp; selection, activation norms and entropy in cpu_backend_select.cpp.
#include "cpu/cpu_backend.h"

#include "core/bf16.h"
#include "cpu/cpu_checks.h"
#include "cpu/ops_attention.h"
#include "cpu/ops_attention_bf16.h"
#include "cpu/ops_cross_entropy.h"
#include "cpu/ops_elementwise.h"
#include "cpu/ops_embedding.h"
#include "cpu/ops_matmul.h"
#include "cpu/ops_rmsnorm.h"
#include "cpu/ops_rope.h"
#include "cpu/ops_swiglu.h"
#include "cpu/parallel.h"
#include "cpu/threads.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace am {

using namespace am::cpu;

CpuBackend::CpuBackend(DType dtype, int threads, bool bf16_matmul) : dtype_(dtype), threads_(threads) {
  if (dtype != DType::F32 && dtype != DType::F64) {
    throw UserError(fmt::format("the CPU backend cannot compute in {}", dtype_name(dtype)),
                    "use precision fp32 or fp64 on the CPU");
  }
  AM_CHECK(!bf16_matmul || dtype == DType::F32, "bf16 matrix products need F32 tensors");
  bf16_matmul_ = bf16_matmul;
  const ThreadChoice choice = cpu_threads(threads);  // run.threads, OMP_NUM_THREADS or the cores
  threads_ = choice.threads;
  threads_source_ = choice.source;
  // OpenBLAS stays single-threaded: matmul parallelises over fixed tiles itself (see
  // ops_matmul.h), which keeps its bits independent of the thread count and leaves no OpenBLAS
  // thread pool spinning beside the OpenMP one.
  openblas_set_num_threads(1);
  enter();
}

std::unique_ptr<Backend> make_cpu_backend(DType dtype, int threads, bool bf16_matmul) {
  return std::make_unique<CpuBackend>(dtype, threads, bf16_matmul);
}

void CpuBackend::enter() const {
  if (omp_get_max_threads() != threads_) omp_set_num_threads(threads_);
}

std::string CpuBackend::describe() const {
  return fmt::format("cpu, {}{}, {} threads ({}; {}), OpenBLAS ({})", dtype_name(dtype_),
                     bf16_matmul_ ? " (bf16 matmul operands, emulated)" : "", threads_, threads_source_,
                     omp_wait_description(), openblas_get_config());
}

// ---- memory ----

Buffer CpuBackend::alloc(size_t bytes) {
  constexpr size_t kAlign = 64;
  const size_t rounded = std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) {
    throw UserError(fmt::format("out of host memory allocating {} bytes", bytes),
                    "reduce the batch size or the model size");
  }
  return tracked(p, bytes, [](void* q) { std::free(q); });
}

void CpuBackend::upload(Tensor dst, const void* host) {
  if (dst.nbytes()) std::memcpy(dst.data, host, dst.nbytes());
}

void CpuBackend::download(void* host, Tensor src) {
  if (src.nbytes()) std::memcpy(host, src.data, src.nbytes());
}

void CpuBackend::zero(Tensor t) {
  if (t.nbytes()) std::memset(t.data, 0, t.nbytes());
}

void CpuBackend::copy_impl(Tensor dst, Tensor src) {
  if (dst.nbytes() && dst.data != src.data) std::memmove(dst.data, src.data, dst.nbytes());
}

// F32 <-> BF16 with the rounding of core/bf16.h (nearest even), as the GPU's __float2bfloat16_rn.
void CpuBackend::convert_impl(Tensor dst, Tensor src) {
  const int64_t n = dst.numel();
  enter();
  if (dst.dtype == DType::BF16) {
    auto* out = static_cast<uint16_t*>(dst.data);
    const float* in = src.as<float>();
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16_bits(in[i]);
  } else {
    float* out = dst.as<float>();
    const auto* in = static_cast<const uint16_t*>(src.data);
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_bits_to_f32(in[i]);
  }
}

// ---- dense math ----

void CpuBackend::matmul_impl(Tensor c, Tensor a, bool trans_a, Tensor b, bool trans_b, double alpha, double beta) {
  const int64_t M = trans_a ? a.dims[1] : a.dims[0], K = trans_a ? a.dims[0] : a.dims[1];
  const int64_t N = trans_b ? b.dims[0] : b.dims[1];
  enter();
  // Someone else in the process may have changed it; the tiles must not run threaded BLAS.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  if (bf16_matmul_) {
    // Products of two bf16 values are exact in fp32, so this is a bf16-in, fp32-accumulate GEMM.
    const float* ar = bf16_operand(a, scratch_a_);
    const float* br = bf16_operand(b, scratch_b_);
    cpu::matmul<float>(c.as<float>(), ar, trans_a, br, trans_b, M, N, K, alpha, beta);
    return;
  }
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::matmul<T>(c.as<T>(), a.as<T>(), trans_a, b.as<T>(), trans_b, M, N, K, alpha, beta);
  });
}

namespace {
void round_to_bf16(float* out, const float* in, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_round(in[i]);
}
}  // namespace

void CpuBackend::refresh_weight_copy_impl(Tensor master) {
  if (!bf16_matmul_) return;
  set_master(Tensor());
  if (!master.data) {  // forget the copy (its model is gone)
    weight_copy_ = {};
    return;
  }
  enter();
  weight_copy_.resize(static_cast<size_t>(master.numel()));
  round_to_bf16(weight_copy_.data(), master.as<float>(), master.numel());
  set_master(master);  // only once the copy holds its values
}

const float* CpuBackend::bf16_operand(const Tensor& t, std::vector<float>& scratch) const {
  if (const int64_t at = master_offset(t); at >= 0) return weight_copy_.data() + at;
  scratch.resize(static_cast<size_t>(t.numel()));
  round_to_bf16(scratch.data(), t.as<float>(), t.numel());
  return scratch.data();
}

void CpuBackend::add_impl(Tensor out, Tensor a, Tensor b) {
  const int64_t n = out.numel();
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::add<T>(out.as<T>(), a.as<T>(), b.as<T>(), n);
  });
}

void CpuBackend::axpy_impl(Tensor y, Tensor x, double alpha) {
  const int64_t n = y.numel();
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::axpy<T>(y.as<T>(), x.as<T>(), alpha, n);
  });
}

void CpuBackend::scale_impl(Tensor x, double s) {
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::scale<T>(x.as<T>(), s, x.numel());
  });
}

double CpuBackend::sum_squares_impl(Tensor x) {
  enter();
  double r = 0;
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    r = cpu::sum_squares<T>(x.as<T>(), x.numel());
  });
  return r;
}

// ---- embedding ----

void CpuBackend::embedding_forward_impl(Tensor out, Tensor tokens, Tensor table) {
  const int64_t N = tokens.numel(), V = row_count(table), d = last_dim(table);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::embedding_forward<T>(out.as<T>(), tokens.as<int32_t>(), table.as<T>(), N, V, d);
  });
}

void CpuBackend::embedding_backward_impl(Tensor dtable, Tensor tokens, Tensor dout) {
  const int64_t N = tokens.numel(), V = row_count(dtable), d = last_dim(dtable);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::embedding_backward<T>(dtable.as<T>(), tokens.as<int32_t>(), dout.as<T>(), N, V, d);
  });
}

// ---- RMSNorm ----

void CpuBackend::rmsnorm_forward_impl(Tensor out, Tensor rstd, Tensor x, Tensor w, double eps) {
  const int64_t N = row_count(x), d = last_dim(x);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_forward<T>(out.as<T>(), rstd.as<T>(), x.as<T>(), w.as<T>(), N, d, eps);
  });
}

void CpuBackend::rmsnorm_backward_impl(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd) {
  const int64_t N = row_count(x), d = last_dim(x);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_backward<T>(dx.as<T>(), dw.as<T>(), dout.as<T>(), x.as<T>(), w.as<T>(), rstd.as<T>(), N, d);
  });
}

// ---- RoPE and attention ----

void CpuBackend::rope_forward_impl(Tensor qkv, const AttnShape& s, double theta, int64_t start) {
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::rope_forward<T>(qkv.as<T>(), s, theta, start);
  });
}

void CpuBackend::rope_backward_impl(Tensor dqkv, const AttnShape& s, double theta) {
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::rope_backward<T>(dqkv.as<T>(), s, theta);
  });
}

void CpuBackend::attention_forward_impl(Tensor out, Tensor lse, Tensor qkv, const AttnShape& s) {
  enter();
  if (bf16_matmul_) {  // the tensor-core kernels' rounding points (cpu/ops_attention_bf16.h)
    cpu::attention_forward_bf16<float>(out.as<float>(), lse.as<float>(), qkv.as<float>(), s);
    return;
  }
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_forward<T>(out.as<T>(), lse.as<T>(), qkv.as<T>(), s);
  });
}

void CpuBackend::attention_backward_impl(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
                                         const AttnShape& s) {
  enter();
  if (bf16_matmul_) {
    cpu::attention_backward_bf16<float>(dqkv.as<float>(), dout.as<float>(), qkv.as<float>(), out.as<float>(),
                                        lse.as<float>(), s);
    return;
  }
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_backward<T>(dqkv.as<T>(), dout.as<T>(), qkv.as<T>(), out.as<T>(), lse.as<T>(), s);
  });
}

// Plain fp32 / fp64 under bf16 too (no tensor-core emulation: the CUDA decode kernel is SIMT fp32).
void CpuBackend::attention_decode_impl(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, int64_t n,
                                       const AttnShape& s) {
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_decode<T>(out.as<T>(), q.as<T>(), k_cache.as<T>(), v_cache.as<T>(), n, s);
  });
}

// ---- SiLU and SwiGLU ----

void CpuBackend::silu_forward_impl(Tensor y, Tensor x) {
  const int64_t M = row_count(x), f = last_dim(x);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::silu_forward<T>(y.as<T>(), x.as<T>(), M * f);
  });
}

void CpuBackend::silu_backward_impl(Tensor dx, Tensor dy, Tensor x) {
  const int64_t M = row_count(x), f = last_dim(x);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::silu_backward<T>(dx.as<T>(), dy.as<T>(), x.as<T>(), M * f);
  });
}

void CpuBackend::swiglu_forward_impl(Tensor h, Tensor g, Tensor u) {
  const int64_t M = row_count(h), f = last_dim(h);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_forward<T>(h.as<T>(), g.as<T>(), u.as<T>(), M * f);
  });
}

void CpuBackend::swiglu_backward_impl(Tensor dg, Tensor du, Tensor dh, Tensor g, Tensor u) {
  const int64_t M = row_count(dh), f = last_dim(dh);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_backward<T>(dg.as<T>(), du.as<T>(), dh.as<T>(), g.as<T>(), u.as<T>(), M * f);
  });
}

// ---- cross-entropy ----

void CpuBackend::cross_entropy_forward_impl(Tensor losses, Tensor logits, Tensor targets) {
  const int64_t N = row_count(logits), V = last_dim(logits);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::cross_entropy_forward<T>(losses.as<T>(), logits.as<T>(), targets.as<int32_t>(), N, V);
  });
}

void CpuBackend::cross_entropy_backward_impl(Tensor dlogits, Tensor logits, Tensor targets, double grad_scale) {
  const int64_t N = row_count(logits), V = last_dim(logits);
  enter();
  dispatch(dtype_, [&](auto tag) {
    using T = decltype(tag);
    cpu::cross_entropy_backward<T>(dlogits.as<T>(), logits.as<T>(), targets.as<int32_t>(), N, V, grad_scale);
  });
}

}  // namespace am

// bf16 storage (core/backend.h, "bf16 storage"): the dtype rule of float arguments, convert, and
// with_f32, the one implementation of an op on BF16 tensors for every backend that has no kernel
// of its own for it: widen each BF16 tensor to an fp32 copy (exact), run the fp32 op, round each
// copy back (nearest even; the copies: core/f32_copies.h). Those roundings are the bf16 rounding points of the whole
// project; the CUDA kernels that read and write bf16 themselves (native_bf16) round at the same points.
#include "core/backend.h"

#include "core/op_checks.h"

namespace am {

using namespace op_checks;

void Backend::check_float(const char* op, const char* name, const Tensor& t) const {
  if (t.dtype == DType::BF16 && act_dtype() == DType::BF16) return;
  AM_CHECK(t.dtype == dtype(), "{}: {} {} has dtype {}, expected {}{}", op, name, t.shape_str(), dtype_name(t.dtype),
           dtype_name(dtype()), act_dtype() == DType::BF16 ? " or BF16" : "");
}

void Backend::check_master(const char* op, const char* name, const Tensor& t) const {
  check_dtype(op, name, t, dtype());
}

void Backend::convert(Tensor dst, Tensor src) {
  AM_CHECK(dst.numel() == src.numel(), "convert: dst {} and src {} differ in element count", dst.shape_str(),
           src.shape_str());
  const auto ok = [](DType t) { return t == DType::F32 || t == DType::BF16; };
  AM_CHECK(ok(dst.dtype) && ok(src.dtype), "convert: {} -> {}: only F32 and BF16 convert", dtype_name(src.dtype),
           dtype_name(dst.dtype));
  if (dst.dtype == src.dtype) {
    copy_impl(dst, src);
  } else {
    convert_impl(dst, src);
  }
}

bool Backend::needs_widening(const char* op, std::initializer_list<Arg> args) const {
  for (const Arg& a : args) {
    if (a.t->dtype == DType::BF16) return !native_bf16(op);
  }
  return false;
}

}  // namespace am

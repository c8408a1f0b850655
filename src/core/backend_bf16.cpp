// bf16 storage (core/backend.h, "bf16 storage"): the dtype rule of float arguments, convert, and
// with_f32, the one implementation of an op on BF16 tensors for every backend that has no kernel
// of its own for it: widen each BF16 tensor to an fp32 copy (exact), run the fp32 op, round each
// copy back (nearest even). Those roundings are the bf16 rounding points of the whole project; the
// CUDA kernels that read and write bf16 themselves (native_bf16) round at the same points.
#include "core/backend.h"

#include "core/op_checks.h"

#include <cstdint>

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

// The copies are made first (one per distinct memory, its uses merged), then widened where read,
// so that an argument both written and read through another name is widened.
Backend::Widened::Widened(Backend& be, std::initializer_list<Arg> args) : be_(be) {
  std::vector<size_t> slot;
  for (const Arg& a : args) {
    if (a.t->dtype != DType::BF16) {
      slot.push_back(SIZE_MAX);
      continue;
    }
    size_t i = 0;
    while (i < orig_.size() && orig_[i].data != a.t->data) ++i;
    if (i == orig_.size()) {
      bufs_.push_back(be.alloc(static_cast<size_t>(a.t->numel()) * sizeof(float) + 1));
      Tensor wide = *a.t;
      wide.data = bufs_.back().get();
      wide.dtype = DType::F32;
      orig_.push_back(*a.t);
      copy_.push_back(wide);
      use_.push_back(0);
    }
    AM_CHECK(orig_[i].numel() == a.t->numel(), "bf16 storage: two arguments share memory at {} with {} and {} elements",
             a.t->data, orig_[i].numel(), a.t->numel());
    use_[i] |= static_cast<uint8_t>(a.use);
    slot.push_back(i);
  }
  for (size_t i = 0; i < orig_.size(); ++i) {
    if (use_[i] & static_cast<uint8_t>(Use::Read)) be.convert(copy_[i], orig_[i]);
  }
  size_t k = 0;
  for (const Arg& a : args) {
    const size_t i = slot[k++];
    if (i == SIZE_MAX) continue;
    Tensor wide = *a.t;
    wide.data = copy_[i].data;
    wide.dtype = DType::F32;
    *a.t = wide;
  }
}

void Backend::Widened::narrow() {
  for (size_t i = 0; i < orig_.size(); ++i) {
    if (use_[i] & static_cast<uint8_t>(Use::Write)) be_.convert(orig_[i], copy_[i]);
  }
}

}  // namespace am

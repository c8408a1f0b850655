#include "core/f32_copies.h"

#include "core/backend.h"
#include "core/error.h"

#include <cstdint>

namespace am {

// The copies are made first (one per distinct memory, its uses merged), then widened where read,
// so that an argument both written and read through another name is widened.
F32Copies::F32Copies(Backend& be, std::initializer_list<TensorArg> args) : be_(be) {
  std::vector<size_t> slot;
  for (const TensorArg& a : args) {
    if (!a.t || a.t->dtype != DType::BF16) {
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
    if (use_[i] & static_cast<uint8_t>(ArgUse::Read)) be.convert(copy_[i], orig_[i]);
  }
  size_t k = 0;
  for (const TensorArg& a : args) {
    const size_t i = slot[k++];
    if (i == SIZE_MAX) continue;
    a.t->data = copy_[i].data;
    a.t->dtype = DType::F32;
  }
}

void F32Copies::narrow() {
  for (size_t i = 0; i < orig_.size(); ++i) {
    if (use_[i] & static_cast<uint8_t>(ArgUse::Write)) be_.convert(orig_[i], copy_[i]);
  }
}

}  // namespace am

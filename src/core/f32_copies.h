// bf16 storage (core/backend.h, "bf16 storage"): fp32 copies of an op's BF16 tensor arguments, so
// that fp32 code runs on them. The one implementation of the widening and the rounding back, used
// by Backend::with_f32 for every op that a backend does not run on bf16 itself, and by the CUDA
// ops that run natively on some dtype combinations and fall back to fp32 for the others.
#pragma once

#include "core/tensor.h"

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace am {

class Backend;

// How an op uses a tensor argument (Backend::Arg): a plain `&t` is read only; Backend::wr(&t) is
// written whole without being read (an output); Backend::rw(&t) is read and written (in place,
// accumulated, or written in part). Arguments that share memory are one tensor, of both uses.
enum class ArgUse : uint8_t { Read = 1, Write = 2, ReadWrite = 3 };
struct TensorArg {
  TensorArg(Tensor* t) : t(t) {}  // NOLINT: implicit by design, a read-only argument
  TensorArg(Tensor* t, ArgUse u) : t(t), use(u) {}
  Tensor* t;  // null: no argument (an optional one)
  ArgUse use = ArgUse::Read;
};

// Replaces each BF16 tensor *a.t among the arguments by an fp32 copy (in place: data and dtype),
// arguments with the same memory sharing one copy: widened from the tensor (exact, a convert op)
// when some argument reads it. narrow() rounds each copy that some argument writes back into its
// tensor (nearest even; acc outputs thus hold round(old + contribution)). F32 tensors are left
// as they are. The copies live as long as this object.
class F32Copies {
 public:
  F32Copies(Backend& be, std::initializer_list<TensorArg> args);
  F32Copies(const F32Copies&) = delete;
  F32Copies& operator=(const F32Copies&) = delete;
  void narrow();

 private:
  Backend& be_;
  std::vector<Tensor> orig_, copy_;
  std::vector<uint8_t> use_;
  std::vector<Buffer> bufs_;
};

}  // namespace am

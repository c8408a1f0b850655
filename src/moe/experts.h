// The expert bank: n SwiGLU experts (../shared/spec/selection.md §1) applied to the rows that the
// dispatcher grouped by expert. Expert e owns rows [off[e], off[e+1]) of its input.
//   gu = x [w1; w3]^T  (A_e, 2f)   (w1 = W_g, the SiLU branch; w3 = W_p, the linear branch)
//   a  = SiLU(gu[:, :f]) * gu[:, f:]  (A_e, f)
//   y  = a w2^T        (A_e, d)
#pragma once

#include "core/tensor_buf.h"
#include "model/params.h"

#include <string>
#include <vector>

namespace am {

struct ExpertNames {
  // Printf-style patterns with {e} for the expert index, e.g. "<p>.experts.{e}.w1.weight".
  std::string w1, w3, w2;
};

class SwigluExperts {
 public:
  SwigluExperts(Backend& be, ExpertNames names, int n_experts, int d_model, int d_ffn,
                double init_std, double out_std);
  void register_params(ParamTable& table);
  void bind(ParamStore& store);
  void allocate(int64_t max_rows);  // activations for up to max_rows assignments

  // x (A,d) grouped by expert -> y (A,d) write. Saves gu and a for the backward.
  void forward(Tensor x, const std::vector<int64_t>& off, Tensor y);
  // dy (A,d) -> dx (A,d) write; weight gradients acc.
  void backward(Tensor x, const std::vector<int64_t>& off, Tensor dy, Tensor dx);

  int d_ffn() const { return f_; }

 private:
  Backend& be_;
  ExpertNames names_;
  int n_, d_, f_;
  double init_std_, out_std_;
  std::vector<int> w13_index_, w2_index_;  // w13: w1 then w3, consecutive: one (2f, d) matrix
  std::vector<Tensor> w13_, dw13_, w2_, dw2_;
  TensorBuf gu_, act_;    // (max_rows, 2f), (max_rows, f): saved activations
  TensorBuf dgu_, dact_;  // scratch for the backward
};

}  // namespace am

// The expert bank: n SwiGLU experts (../shared/spec/selection.md §1) applied to the rows that the
// dispatcher grouped by expert. Expert e owns rows [off[e], off[e+1]) of its input.
//   g = x w1^T, u = x w3^T   (A_e, f)   (w1 = W_g, the SiLU branch; w3 = W_p, the linear branch)
//   a = SiLU(g) * u          (A_e, f)
//   y = a w2^T               (A_e, d)
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
  std::vector<int> w1_index_, w3_index_, w2_index_;
  std::vector<Tensor> w1_, dw1_, w3_, dw3_, w2_, dw2_;
  TensorBuf g_, u_, act_;      // (max_rows, f) each: saved activations
  TensorBuf dg_, du_, dact_;   // scratch for the backward
};

}  // namespace am

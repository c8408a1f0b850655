// The expert bank of an MoE layer (../shared/spec/selection.md §1), applied to the rows the
// dispatcher grouped by expert: expert e owns rows [off[e], off[e+1]) of its input.
//
//   SwigluExperts:      g = x w1^T, u = x w3^T, a = SiLU(g) * u, y = a w2^T          (Mixtral)
//   FactorizedExperts:  c = x w1_down^T (d_low), g = c w1_up^T, u = x w3^T, ...      (AoE Eq. 3)
//     With an activation-norm scorer at the latent node, c is not recomputed: the scorer's cache
//     rows are passed in as `latent` (AoE Eq. 4: one GEMM for all experts' W_down).
#pragma once

#include "core/tensor_buf.h"
#include "params/params.h"

#include <string>
#include <vector>

namespace am {

// Which experts this process holds: [first, first + count) of the layer's n (expert parallelism
// gives each rank of a group n / ep of them; otherwise all).
struct ExpertShard {
  int first = 0;
  int count = 0;
};

// The experts with rows in a call (off: expert-major row offsets) and the operand lists of their
// grouped GEMMs (Backend::matmul_grouped: one launch for all experts on the GPU).
struct ExpertBlocks {
  explicit ExpertBlocks(const std::vector<int64_t>& off);
  std::vector<Tensor> rows(Tensor t) const;                                              // t's rows of each expert
  std::vector<Tensor> pick(const std::vector<Tensor>& per_expert, int shift = 0) const;  // [e + shift]
  Tensor span(Tensor t) const { return t.rows(first, total); }  // t's rows of all experts, one view
  std::vector<int> live;                                        // experts with at least one row
  std::vector<int64_t> begin, count;
  int64_t first = 0, total = 0;  // rows [first, first + total) of every expert
};

// Parameter names with {e} for the expert index, e.g. "<prefix>.experts.{e}.w1.weight".
struct ExpertNames {
  std::string w1, w3, w2;
  std::string w1_down, w1_up;  // factorized experts
};

class Experts {
 public:
  virtual ~Experts() = default;
  virtual void register_params(ParamTable& table) = 0;
  virtual void bind(ParamStore& store) = 0;
  virtual void allocate(int64_t max_rows) = 0;
  // x (A,d) grouped by the shard's experts (off: count+1 offsets) -> y (A,d) write.
  // latent (A,d_low): precomputed x W_down rows, or
  // an empty Tensor. Saves what the backward needs.
  virtual void forward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor y) = 0;
  // dy (A,d) -> dx (A,d) write; dlatent (A,d_low) write when latent was given; weights acc.
  virtual void backward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor dy, Tensor dx,
                        Tensor dlatent) = 0;
  // Router-free scoring (evaluation, all experts held): expert e's activation at `node` (gate,
  // up, act, glu, out) for every row of x (N,d), into out (N, node_width(node)). scratch: (N, hidden) twice.
  virtual void node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor scratch1,
                               Tensor scratch2) = 0;
  virtual int hidden() const = 0;  // the expert's hidden width (d_ffn or d_wide)
  int node_width(const std::string& node, int d_model) const { return node == "out" ? d_model : hidden(); }
};

// Helpers shared by the expert kinds (experts.cpp).
std::string expert_param_name(const std::string& pattern, int e);
// Router-free node activations from an expert's gate pre-activation g and up projection u (N,h):
// gate -> g, up -> u, act -> SiLU(g), glu -> SiLU(g) * u, out -> (SiLU(g) * u) w2^T (N,d).
void node_from_gate_up(Backend& be, const std::string& node, Tensor g, Tensor u, Tensor w2, Tensor out);

// The SwiGLU tail both expert kinds end in: a = SiLU(g) * u over all the call's rows (one
// element-wise pass), y = a w2^T per expert, and its backward. The caller writes g and u (its own
// gate and up products) before forward and uses dg and du after backward.
struct SwigluTail {
  void allocate(Backend& be, int64_t max_rows, int64_t width);  // (max_rows, width) each
  void forward(Backend& be, const ExpertBlocks& blk, const std::vector<Tensor>& w2, Tensor y);
  // dact = dy w2, dw2 += dy^T a, then dg, du.
  void backward(Backend& be, const ExpertBlocks& blk, const std::vector<Tensor>& w2, const std::vector<Tensor>& dw2,
                Tensor dy);
  TensorBuf g, u, act;     // saved activations, act_dtype()
  TensorBuf dg, du, dact;  // backward scratch, dtype()
};

class SwigluExperts final : public Experts {
 public:
  SwigluExperts(Backend& be, ExpertNames names, ExpertShard shard, int d_model, int d_ffn, double init_std,
                double out_std, bool moe = true);
  void register_params(ParamTable& table) override;
  void bind(ParamStore& store) override;
  void allocate(int64_t max_rows) override;
  void forward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor y) override;
  void backward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor dy, Tensor dx,
                Tensor dlatent) override;
  void node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor scratch1, Tensor scratch2) override;
  int hidden() const override { return f_; }

 private:
  Backend& be_;
  ExpertNames names_;
  ExpertShard shard_;
  int n_, d_, f_;
  double init_std_, out_std_;
  bool moe_;  // expert weights of an MoE layer (sharded), not a dense FFN
  std::vector<int> w1_index_, w3_index_, w2_index_;
  std::vector<Tensor> w1_, dw1_, w3_, dw3_, w2_, dw2_;
  SwigluTail tail_;  // (max_rows, f) each
};

class FactorizedExperts final : public Experts {
 public:
  // W_down is held for all n_experts on every rank (the activation-norm scorer needs all of it;
  // it is small), the other matrices for the shard only.
  FactorizedExperts(Backend& be, ExpertNames names, int n_experts, ExpertShard shard, int d_model, int d_low,
                    int d_wide, double init_std, double out_std);
  void register_params(ParamTable& table) override;
  void bind(ParamStore& store) override;
  void allocate(int64_t max_rows) override;
  void forward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor y) override;
  void backward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor dy, Tensor dx,
                Tensor dlatent) override;
  void node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor scratch1, Tensor scratch2) override;
  int hidden() const override { return w_; }
  int d_low() const { return dl_; }
  // All experts' W_down stacked, (n*d_low, d): declared back to back, so it is one matrix (the
  // activation-norm scorer's one GEMM) and its gradient twin.
  Tensor stacked_down() const { return down_all_; }
  Tensor stacked_down_grad() const { return ddown_all_; }

 private:
  Backend& be_;
  ExpertNames names_;
  int n_;
  ExpertShard shard_;
  int d_, dl_, w_;
  double init_std_, out_std_;
  std::vector<int> down_index_, up_index_, w3_index_, w2_index_;
  Tensor down_all_, ddown_all_;
  std::vector<Tensor> down_, ddown_, up_, dup_, w3_, dw3_, w2_, dw2_;
  TensorBuf c_;      // (max_rows, d_low): x W_down rows when no latent is given
  SwigluTail tail_;  // (max_rows, w) each
  TensorBuf dc_;     // backward scratch
};

}  // namespace am

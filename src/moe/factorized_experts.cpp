#include "moe/experts.h"

namespace am {

FactorizedExperts::FactorizedExperts(Backend& be, ExpertNames names, int n_experts, ExpertShard shard, int d_model,
                                     int d_low, int d_wide, double init_std, double out_std)
    : be_(be),
      names_(std::move(names)),
      n_(n_experts),
      shard_(shard),
      d_(d_model),
      dl_(d_low),
      w_(d_wide),
      init_std_(init_std),
      out_std_(out_std) {}

void FactorizedExperts::register_params(ParamTable& table) {
  // Every expert's W_down first, back to back: together they are the (n*d_low, d) matrix of AoE's
  // single scoring GEMM (Eq. 4).
  for (int e = 0; e < n_; ++e) {
    down_index_.push_back(table.add(expert_param_name(names_.w1_down, e), {dl_, d_}, Init::Normal, init_std_));
  }
  for (int e = shard_.first; e < shard_.first + shard_.count; ++e) {
    up_index_.push_back(table.add_expert(expert_param_name(names_.w1_up, e), {w_, dl_}, Init::Normal, init_std_, e));
    w3_index_.push_back(table.add_expert(expert_param_name(names_.w3, e), {w_, d_}, Init::Normal, init_std_, e));
    w2_index_.push_back(table.add_expert(expert_param_name(names_.w2, e), {d_, w_}, Init::Normal, out_std_, e));
  }
}

void FactorizedExperts::bind(ParamStore& store) {
  const Tensor first = store.value(down_index_[0]), dfirst = store.grad(down_index_[0]);
  down_all_ = Tensor(first.data, first.dtype, {static_cast<int64_t>(n_) * dl_, d_});
  ddown_all_ = Tensor(dfirst.data, dfirst.dtype, {static_cast<int64_t>(n_) * dl_, d_});
  for (int e = 0; e < n_; ++e) {
    down_.push_back(store.value(down_index_[e]));
    ddown_.push_back(store.grad(down_index_[e]));
  }
  for (int e = 0; e < shard_.count; ++e) {
    up_.push_back(store.value(up_index_[e]));
    dup_.push_back(store.grad(up_index_[e]));
    w3_.push_back(store.value(w3_index_[e]));
    dw3_.push_back(store.grad(w3_index_[e]));
    w2_.push_back(store.value(w2_index_[e]));
    dw2_.push_back(store.grad(w2_index_[e]));
  }
}

void FactorizedExperts::allocate(int64_t max_rows) {
  const DType dt = be_.dtype(), at = be_.act_dtype();  // saved activations in act_dtype()
  tail_.allocate(be_, max_rows, w_);
  c_ = TensorBuf(be_, at, {max_rows, dl_});
  dc_ = TensorBuf(be_, dt, {max_rows, dl_});
}

// Every product is one grouped GEMM over the experts that have rows (Backend::matmul_grouped),
// and the SwiGLU one element-wise pass over all their rows [off[0], off[n]). Local expert e uses
// the global expert's W_down (down_[shard_.first + e]).
void FactorizedExperts::forward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor y) {
  const bool cached = latent.data != nullptr;
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  const std::vector<Tensor> xs = blk.rows(x), c = blk.rows(cached ? latent : Tensor(c_));
  if (!cached) be_.matmul_grouped(c, xs, false, blk.pick(down_, shard_.first), true, 1.0, 0.0);  // c = x W_down^T
  be_.matmul_grouped(blk.rows(tail_.g), c, false, blk.pick(up_), true, 1.0, 0.0);   // g (rows, w) = c W_up^T
  be_.matmul_grouped(blk.rows(tail_.u), xs, false, blk.pick(w3_), true, 1.0, 0.0);  // u (rows, w) = x w3^T
  tail_.forward(be_, blk, w2_, y);                                                  // y (rows, d) = (SiLU(g) * u) w2^T
}

void FactorizedExperts::backward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor dy, Tensor dx,
                                 Tensor dlatent) {
  const bool cached = latent.data != nullptr;
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  tail_.backward(be_, blk, w2_, dw2_, dy);  // dg, du (rows, w); dw2 accumulated
  const std::vector<Tensor> xs = blk.rows(x), dxs = blk.rows(dx);
  const std::vector<Tensor> dg = blk.rows(tail_.dg), du = blk.rows(tail_.du);
  const std::vector<Tensor> c = blk.rows(cached ? latent : Tensor(c_)), dc = blk.rows(cached ? dlatent : Tensor(dc_));
  be_.matmul_grouped(blk.pick(dw3_), du, true, xs, false, 1.0, 1.0);   // dw3 (w, d) += du^T x
  be_.matmul_grouped(dxs, du, false, blk.pick(w3_), false, 1.0, 0.0);  // dx = du w3 (+ dc W_down below)
  be_.matmul_grouped(blk.pick(dup_), dg, true, c, false, 1.0, 1.0);    // dW_up (w, d_low) += dg^T c
  be_.matmul_grouped(dc, dg, false, blk.pick(up_), false, 1.0, 0.0);   // dc (rows, d_low) = dg W_up
  if (!cached) {
    be_.matmul_grouped(blk.pick(ddown_, shard_.first), dc, true, xs, false, 1.0, 1.0);   // dW_down += dc^T x
    be_.matmul_grouped(dxs, dc, false, blk.pick(down_, shard_.first), false, 1.0, 1.0);  // dx += dc W_down
  }
}

void FactorizedExperts::node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor g, Tensor u) {
  AM_CHECK(shard_.first == 0 && shard_.count == n_, "router-free scoring needs every expert on this rank");
  const int64_t N = x.dim(0);
  Tensor c = Tensor(c_).rows(0, std::min<int64_t>(N, Tensor(c_).dim(0)));
  AM_CHECK(c.dim(0) == N, "node activation of {} rows with a cache of {}", N, Tensor(c_).dim(0));
  be_.matmul(c, x, false, down_[e], true, 1.0, 0.0);  // (N, d_low)
  be_.matmul(g, c, false, up_[e], true, 1.0, 0.0);    // (N, w)
  be_.matmul(u, x, false, w3_[e], true, 1.0, 0.0);
  node_from_gate_up(be_, node, g, u, w2_[e], out);
}

}  // namespace am

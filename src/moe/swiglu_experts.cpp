// Experts swiglu: (SiLU(x w1^T) * x w3^T) w2^T per expert (SwigluExperts, experts.h; Mixtral).
// A dense model's one FFN is also a SwigluExperts (components.cpp), not chosen by this strategy.
#include <fmt/format.h>

#include "moe/experts.h"
#include "moe/strategies.h"

namespace am {

SwigluExperts::SwigluExperts(Backend& be, ExpertNames names, ExpertShard shard, int d_model, int d_ffn, double init_std,
                             double out_std, bool moe)
    : be_(be),
      names_(std::move(names)),
      shard_(shard),
      n_(shard.count),
      d_(d_model),
      f_(d_ffn),
      init_std_(init_std),
      out_std_(out_std),
      moe_(moe) {}

void SwigluExperts::register_params(ParamTable& table) {
  auto add = [&](const std::string& pattern, int e, std::vector<int64_t> shape, double std) {
    const std::string name = expert_param_name(pattern, e);
    return moe_ ? table.add_expert(name, std::move(shape), Init::Normal, std, e)
                : table.add(name, std::move(shape), Init::Normal, std);
  };
  for (int e = shard_.first; e < shard_.first + n_; ++e) {
    w1_index_.push_back(add(names_.w1, e, {f_, d_}, init_std_));
    w3_index_.push_back(add(names_.w3, e, {f_, d_}, init_std_));
    w2_index_.push_back(add(names_.w2, e, {d_, f_}, out_std_));
  }
}

void SwigluExperts::bind(ParamStore& store) {
  for (int e = 0; e < n_; ++e) {
    w1_.push_back(store.value(w1_index_[e]));
    dw1_.push_back(store.grad(w1_index_[e]));
    w3_.push_back(store.value(w3_index_[e]));
    dw3_.push_back(store.grad(w3_index_[e]));
    w2_.push_back(store.value(w2_index_[e]));
    dw2_.push_back(store.grad(w2_index_[e]));
  }
}

void SwigluExperts::allocate(int64_t max_rows) { tail_.allocate(be_, max_rows, f_); }

// Every product is one grouped GEMM over the experts that have rows (Backend::matmul_grouped),
// and the SwiGLU one element-wise pass over all their rows [off[0], off[n]).
void SwigluExperts::forward(Tensor x, Tensor /*latent*/, const std::vector<int64_t>& off, Tensor y) {
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  const std::vector<Tensor> xs = blk.rows(x);
  be_.matmul_grouped(blk.rows(tail_.g), xs, false, blk.pick(w1_), true, 1.0, 0.0);  // g (rows, f) = x w1^T
  be_.matmul_grouped(blk.rows(tail_.u), xs, false, blk.pick(w3_), true, 1.0, 0.0);  // u (rows, f) = x w3^T
  tail_.forward(be_, blk, w2_, y);                                                  // y (rows, d) = (SiLU(g) * u) w2^T
}

void SwigluExperts::backward(Tensor x, Tensor /*latent*/, const std::vector<int64_t>& off, Tensor dy, Tensor dx,
                             Tensor /*dlatent*/) {
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  tail_.backward(be_, blk, w2_, dw2_, dy);  // dg, du (rows, f); dw2 accumulated
  const std::vector<Tensor> xs = blk.rows(x), dxs = blk.rows(dx);
  const std::vector<Tensor> dg = blk.rows(tail_.dg), du = blk.rows(tail_.du);
  be_.matmul_grouped(blk.pick(dw1_), dg, true, xs, false, 1.0, 1.0);   // dw1 (f,d) += dg^T x
  be_.matmul_grouped(blk.pick(dw3_), du, true, xs, false, 1.0, 1.0);   // dw3 (f,d) += du^T x
  be_.matmul_grouped(dxs, dg, false, blk.pick(w1_), false, 1.0, 0.0);  // dx = dg w1 + du w3
  be_.matmul_grouped(dxs, du, false, blk.pick(w3_), false, 1.0, 1.0);
}

void SwigluExperts::node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor g, Tensor u) {
  AM_CHECK(shard_.first == 0, "router-free scoring needs every expert on this rank (expert {})", e);
  be_.matmul(g, x, false, w1_[e], true, 1.0, 0.0);  // (N, f)
  be_.matmul(u, x, false, w3_[e], true, 1.0, 0.0);
  node_from_gate_up(be_, node, g, u, w2_[e], out);
}

namespace {

const bool kRegistered = register_strategy([] {
  ExpertStrategy s;
  s.name = "swiglu";
  s.order = 1;
  s.doc = "(SiLU(x W_g) * x W_p) W_o";
  s.hidden_width = [](const MoeConfig& m, int) { return m.d_ffn; };
  s.params = [](const MoeConfig& m, int d_model) -> int64_t {
    return 3 * int64_t{d_model} * m.d_ffn;  // w1, w3 [d_ffn, d], w2 [d, d_ffn]
  };
  s.mixtral_layout = true;
  s.make = [](Backend& be, const ExpertArgs& a) -> std::unique_ptr<Experts> {
    return std::make_unique<SwigluExperts>(be, a.names, a.shard, a.cfg.d_model, a.cfg.moe.d_ffn, a.init_std, a.out_std);
  };
  return s;
}());

}  // namespace

}  // namespace am

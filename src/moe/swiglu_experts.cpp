#include "moe/experts.h"

#include <fmt/format.h>

namespace am {

SwigluExperts::SwigluExperts(Backend& be, ExpertNames names, ExpertShard shard, int d_model, int d_ffn,
                             double init_std, double out_std, bool moe)
    : be_(be), names_(std::move(names)), shard_(shard), n_(shard.count), d_(d_model), f_(d_ffn),
      init_std_(init_std), out_std_(out_std), moe_(moe) {}

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

void SwigluExperts::allocate(int64_t max_rows) {
  for (TensorBuf* b : {&g_, &u_, &act_}) *b = TensorBuf(be_, be_.act_dtype(), {max_rows, f_});  // saved
  for (TensorBuf* b : {&dg_, &du_, &dact_}) *b = TensorBuf(be_, be_.dtype(), {max_rows, f_});
}

namespace {
Tensor rows_of(Tensor t, int64_t begin, int64_t rows) { return t.rows(begin, rows); }
}  // namespace

// Every product is one grouped GEMM over the experts that have rows (Backend::matmul_grouped),
// and the SwiGLU one element-wise pass over all their rows [off[0], off[n]).
void SwigluExperts::forward(Tensor x, Tensor /*latent*/, const std::vector<int64_t>& off, Tensor y) {
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  const std::vector<Tensor> xs = blk.rows(x), g = blk.rows(g_), u = blk.rows(u_), act = blk.rows(act_);
  be_.matmul_grouped(g, xs, false, blk.pick(w1_), true, 1.0, 0.0);  // g (rows, f) = x w1^T
  be_.matmul_grouped(u, xs, false, blk.pick(w3_), true, 1.0, 0.0);  // u (rows, f) = x w3^T
  be_.swiglu_forward(rows_of(act_, blk.first, blk.total), rows_of(g_, blk.first, blk.total),
                     rows_of(u_, blk.first, blk.total));           // a = SiLU(g) * u
  be_.matmul_grouped(blk.rows(y), act, false, blk.pick(w2_), true, 1.0, 0.0);  // y (rows, d) = a w2^T
}

void SwigluExperts::backward(Tensor x, Tensor /*latent*/, const std::vector<int64_t>& off, Tensor dy,
                             Tensor dx, Tensor /*dlatent*/) {
  const ExpertBlocks blk(off);
  if (blk.live.empty()) return;
  const std::vector<Tensor> xs = blk.rows(x), dys = blk.rows(dy), dxs = blk.rows(dx);
  const std::vector<Tensor> dg = blk.rows(dg_), du = blk.rows(du_), dact = blk.rows(dact_);
  be_.matmul_grouped(dact, dys, false, blk.pick(w2_), false, 1.0, 0.0);          // da (rows,f) = dy w2
  be_.matmul_grouped(blk.pick(dw2_), dys, true, blk.rows(act_), false, 1.0, 1.0);  // dw2 (d,f) += dy^T a
  be_.swiglu_backward(rows_of(dg_, blk.first, blk.total), rows_of(du_, blk.first, blk.total),
                      rows_of(dact_, blk.first, blk.total), rows_of(g_, blk.first, blk.total),
                      rows_of(u_, blk.first, blk.total));                        // dg, du (rows,f)
  be_.matmul_grouped(blk.pick(dw1_), dg, true, xs, false, 1.0, 1.0);  // dw1 (f,d) += dg^T x
  be_.matmul_grouped(blk.pick(dw3_), du, true, xs, false, 1.0, 1.0);  // dw3 (f,d) += du^T x
  be_.matmul_grouped(dxs, dg, false, blk.pick(w1_), false, 1.0, 0.0);  // dx = dg w1 + du w3
  be_.matmul_grouped(dxs, du, false, blk.pick(w3_), false, 1.0, 1.0);
}

void SwigluExperts::node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor g,
                                    Tensor u) {
  AM_CHECK(shard_.first == 0, "router-free scoring needs every expert on this rank (expert {})", e);
  be_.matmul(g, x, false, w1_[e], true, 1.0, 0.0);  // (N, f)
  be_.matmul(u, x, false, w3_[e], true, 1.0, 0.0);
  node_from_gate_up(be_, node, g, u, w2_[e], out);
}

}  // namespace am

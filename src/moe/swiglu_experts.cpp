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
  const DType dt = be_.dtype();
  for (TensorBuf* b : {&g_, &u_, &act_, &dg_, &du_, &dact_}) *b = TensorBuf(be_, dt, {max_rows, f_});
}

namespace {
Tensor rows_of(Tensor t, int64_t begin, int64_t rows) { return t.rows(begin, rows); }
}  // namespace

// The per-expert GEMMs in two loops around one SwiGLU over every expert's rows [off[0], off[n])
// (element-wise: the same values as one call per expert, in one launch).
void SwigluExperts::forward(Tensor x, Tensor /*latent*/, const std::vector<int64_t>& off, Tensor y) {
  for (int e = 0; e < n_; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor xe = rows_of(x, b, rows);
    be_.matmul(rows_of(g_, b, rows), xe, false, w1_[e], true, 1.0, 0.0);  // g (rows, f) = x w1^T
    be_.matmul(rows_of(u_, b, rows), xe, false, w3_[e], true, 1.0, 0.0);  // u (rows, f) = x w3^T
  }
  const int64_t b0 = off[0], all = off[n_] - off[0];
  if (all > 0) be_.swiglu_forward(rows_of(act_, b0, all), rows_of(g_, b0, all), rows_of(u_, b0, all));  // a = SiLU(g) u
  for (int e = 0; e < n_; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    be_.matmul(rows_of(y, b, rows), rows_of(act_, b, rows), false, w2_[e], true, 1.0, 0.0);  // y (rows, d) = a w2^T
  }
}

void SwigluExperts::backward(Tensor x, Tensor /*latent*/, const std::vector<int64_t>& off, Tensor dy,
                             Tensor dx, Tensor /*dlatent*/) {
  for (int e = 0; e < n_; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor dye = rows_of(dy, b, rows);
    be_.matmul(rows_of(dact_, b, rows), dye, false, w2_[e], false, 1.0, 0.0);  // da (rows,f) = dy w2
    be_.matmul(dw2_[e], dye, true, rows_of(act_, b, rows), false, 1.0, 1.0);   // dw2 (d,f) += dy^T a
  }
  const int64_t b0 = off[0], all = off[n_] - off[0];
  if (all > 0) {
    be_.swiglu_backward(rows_of(dg_, b0, all), rows_of(du_, b0, all), rows_of(dact_, b0, all),
                        rows_of(g_, b0, all), rows_of(u_, b0, all));  // dg, du (rows,f)
  }
  for (int e = 0; e < n_; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor dg = rows_of(dg_, b, rows), du = rows_of(du_, b, rows);
    Tensor xe = rows_of(x, b, rows), dxe = rows_of(dx, b, rows);
    be_.matmul(dw1_[e], dg, true, xe, false, 1.0, 1.0);     // dw1 (f,d) += dg^T x
    be_.matmul(dw3_[e], du, true, xe, false, 1.0, 1.0);     // dw3 (f,d) += du^T x
    be_.matmul(dxe, dg, false, w1_[e], false, 1.0, 0.0);    // dx = dg w1 + du w3
    be_.matmul(dxe, du, false, w3_[e], false, 1.0, 1.0);
  }
}

void SwigluExperts::node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor g,
                                    Tensor u) {
  AM_CHECK(shard_.first == 0, "router-free scoring needs every expert on this rank (expert {})", e);
  be_.matmul(g, x, false, w1_[e], true, 1.0, 0.0);  // (N, f)
  be_.matmul(u, x, false, w3_[e], true, 1.0, 0.0);
  node_from_gate_up(be_, node, g, u, w2_[e], out);
}

}  // namespace am

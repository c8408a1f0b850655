#include "moe/experts.h"

namespace am {
namespace {
Tensor rows_of(Tensor t, int64_t begin, int64_t rows) { return t.rows(begin, rows); }
}  // namespace

FactorizedExperts::FactorizedExperts(Backend& be, ExpertNames names, int n_experts, ExpertShard shard,
                                     int d_model, int d_low, int d_wide, double init_std, double out_std)
    : be_(be), names_(std::move(names)), n_(n_experts), shard_(shard), d_(d_model), dl_(d_low), w_(d_wide),
      init_std_(init_std), out_std_(out_std) {}

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
  const DType dt = be_.dtype();
  for (TensorBuf* b : {&g_, &u_, &act_, &dg_, &du_, &dact_}) *b = TensorBuf(be_, dt, {max_rows, w_});
  c_ = TensorBuf(be_, dt, {max_rows, dl_});
  dc_ = TensorBuf(be_, dt, {max_rows, dl_});
}

// The per-expert GEMMs in two loops around one SwiGLU over every expert's rows [off[0], off[n])
// (element-wise: the same values as one call per expert, in one launch).
void FactorizedExperts::forward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor y) {
  const bool cached = latent.data != nullptr;
  for (int e = 0; e < shard_.count; ++e) {
    const int ge = shard_.first + e;  // the global expert: its W_down
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor xe = rows_of(x, b, rows);
    Tensor c = cached ? rows_of(latent, b, rows) : rows_of(c_, b, rows);
    if (!cached) be_.matmul(c, xe, false, down_[ge], true, 1.0, 0.0);           // c (rows, d_low) = x W_down^T
    be_.matmul(rows_of(g_, b, rows), c, false, up_[e], true, 1.0, 0.0);         // g (rows, w) = c W_up^T
    be_.matmul(rows_of(u_, b, rows), xe, false, w3_[e], true, 1.0, 0.0);        // u (rows, w) = x w3^T
  }
  const int64_t b0 = off[0], all = off[shard_.count] - off[0];
  if (all > 0) be_.swiglu_forward(rows_of(act_, b0, all), rows_of(g_, b0, all), rows_of(u_, b0, all));
  for (int e = 0; e < shard_.count; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    be_.matmul(rows_of(y, b, rows), rows_of(act_, b, rows), false, w2_[e], true, 1.0, 0.0);  // y (rows, d)
  }
}

void FactorizedExperts::backward(Tensor x, Tensor latent, const std::vector<int64_t>& off, Tensor dy,
                                 Tensor dx, Tensor dlatent) {
  const bool cached = latent.data != nullptr;
  for (int e = 0; e < shard_.count; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor dye = rows_of(dy, b, rows);
    be_.matmul(rows_of(dact_, b, rows), dye, false, w2_[e], false, 1.0, 0.0);  // da (rows, w) = dy w2
    be_.matmul(dw2_[e], dye, true, rows_of(act_, b, rows), false, 1.0, 1.0);   // dw2 (d, w) += dy^T a
  }
  const int64_t b0 = off[0], all = off[shard_.count] - off[0];
  if (all > 0) {
    be_.swiglu_backward(rows_of(dg_, b0, all), rows_of(du_, b0, all), rows_of(dact_, b0, all),
                        rows_of(g_, b0, all), rows_of(u_, b0, all));  // dg, du (rows, w)
  }
  for (int e = 0; e < shard_.count; ++e) {
    const int ge = shard_.first + e;
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor dg = rows_of(dg_, b, rows), du = rows_of(du_, b, rows);
    Tensor xe = rows_of(x, b, rows), dxe = rows_of(dx, b, rows);
    Tensor c = cached ? rows_of(latent, b, rows) : rows_of(c_, b, rows);
    Tensor dc = cached ? rows_of(dlatent, b, rows) : rows_of(dc_, b, rows);
    be_.matmul(dw3_[e], du, true, xe, false, 1.0, 1.0);     // dw3 (w, d) += du^T x
    be_.matmul(dxe, du, false, w3_[e], false, 1.0, 0.0);    // dx = du w3 (+ dc W_down below)
    be_.matmul(dup_[e], dg, true, c, false, 1.0, 1.0);      // dW_up (w, d_low) += dg^T c
    be_.matmul(dc, dg, false, up_[e], false, 1.0, 0.0);     // dc (rows, d_low) = dg W_up
    if (!cached) {
      be_.matmul(ddown_[ge], dc, true, xe, false, 1.0, 1.0);   // dW_down (d_low, d) += dc^T x
      be_.matmul(dxe, dc, false, down_[ge], false, 1.0, 1.0);  // dx += dc W_down
    }
  }
}

void FactorizedExperts::node_activation(int e, const std::string& node, Tensor x, Tensor out, Tensor g,
                                        Tensor u) {
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

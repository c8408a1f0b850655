#include "moe/experts.h"

#include <fmt/format.h>

namespace am {
namespace {

std::string expert_name(const std::string& pattern, int e) {
  return fmt::format(fmt::runtime(pattern), fmt::arg("e", e));
}

// A (rows, cols) view of the first `rows` rows starting at `begin`.
Tensor rows_of(Tensor t, int64_t begin, int64_t rows) { return t.rows(begin, rows); }

}  // namespace

SwigluExperts::SwigluExperts(Backend& be, ExpertNames names, int n_experts, int d_model, int d_ffn,
                             double init_std, double out_std)
    : be_(be), names_(std::move(names)), n_(n_experts), d_(d_model), f_(d_ffn),
      init_std_(init_std), out_std_(out_std) {}

void SwigluExperts::register_params(ParamTable& table) {
  for (int e = 0; e < n_; ++e) {
    w13_index_.push_back(table.add(expert_name(names_.w1, e), {f_, d_}, Init::Normal, init_std_));
    table.add(expert_name(names_.w3, e), {f_, d_}, Init::Normal, init_std_);
    w2_index_.push_back(table.add(expert_name(names_.w2, e), {d_, f_}, Init::Normal, out_std_));
  }
}

void SwigluExperts::bind(ParamStore& store) {
  for (int e = 0; e < n_; ++e) {
    // w1 and w3 were declared back to back: read them as one (2f, d) matrix.
    Tensor w1 = store.value(w13_index_[e]), dw1 = store.grad(w13_index_[e]);
    w13_.push_back(Tensor(w1.data, w1.dtype, {2 * f_, d_}));
    dw13_.push_back(Tensor(dw1.data, dw1.dtype, {2 * f_, d_}));
    w2_.push_back(store.value(w2_index_[e]));
    dw2_.push_back(store.grad(w2_index_[e]));
  }
}

void SwigluExperts::allocate(int64_t max_rows) {
  const DType dt = be_.dtype();
  gu_ = TensorBuf(be_, dt, {max_rows, 2 * f_});
  act_ = TensorBuf(be_, dt, {max_rows, f_});
  dgu_ = TensorBuf(be_, dt, {max_rows, 2 * f_});
  dact_ = TensorBuf(be_, dt, {max_rows, f_});
}

void SwigluExperts::forward(Tensor x, const std::vector<int64_t>& off, Tensor y) {
  for (int e = 0; e < n_; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor gu = rows_of(gu_, b, rows), act = rows_of(act_, b, rows);
    be_.matmul(gu, rows_of(x, b, rows), false, w13_[e], true, 1.0, 0.0);  // (rows, 2f)
    be_.swiglu_forward(act, gu);                                          // (rows, f)
    be_.matmul(rows_of(y, b, rows), act, false, w2_[e], true, 1.0, 0.0);  // (rows, d)
  }
}

void SwigluExperts::backward(Tensor x, const std::vector<int64_t>& off, Tensor dy, Tensor dx) {
  for (int e = 0; e < n_; ++e) {
    const int64_t b = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    Tensor gu = rows_of(gu_, b, rows), act = rows_of(act_, b, rows);
    Tensor dgu = rows_of(dgu_, b, rows), dact = rows_of(dact_, b, rows);
    Tensor xe = rows_of(x, b, rows), dye = rows_of(dy, b, rows);
    be_.matmul(dact, dye, false, w2_[e], false, 1.0, 0.0);   // da (rows,f) = dy w2
    be_.matmul(dw2_[e], dye, true, act, false, 1.0, 1.0);    // dw2 (d,f) += dy^T a
    be_.swiglu_backward(dgu, dact, gu);                      // dgu (rows, 2f)
    be_.matmul(dw13_[e], dgu, true, xe, false, 1.0, 1.0);    // dw13 (2f,d) += dgu^T x
    be_.matmul(rows_of(dx, b, rows), dgu, false, w13_[e], false, 1.0, 0.0);  // dx = dgu w13
  }
}

}  // namespace am

#include "moe/experts.h"

#include <fmt/format.h>

namespace am {

ExpertBlocks::ExpertBlocks(const std::vector<int64_t>& off) {
  AM_CHECK(!off.empty(), "expert offsets: none");
  for (size_t e = 0; e + 1 < off.size(); ++e) {
    if (off[e + 1] == off[e]) continue;
    live.push_back(static_cast<int>(e));
    begin.push_back(off[e]);
    count.push_back(off[e + 1] - off[e]);
  }
  first = off.front();
  total = off.back() - off.front();
}

std::vector<Tensor> ExpertBlocks::rows(Tensor t) const {
  std::vector<Tensor> out;
  for (size_t j = 0; j < live.size(); ++j) out.push_back(t.rows(begin[j], count[j]));
  return out;
}

std::vector<Tensor> ExpertBlocks::pick(const std::vector<Tensor>& per_expert, int shift) const {
  std::vector<Tensor> out;
  for (int e : live) out.push_back(per_expert[static_cast<size_t>(e + shift)]);
  return out;
}

std::string expert_param_name(const std::string& pattern, int e) {
  return fmt::format(fmt::runtime(pattern), fmt::arg("e", e));
}

void node_from_gate_up(Backend& be, const std::string& node, Tensor g, Tensor u, Tensor w2, Tensor out) {
  if (node == "gate") {
    be.copy(out, g);
  } else if (node == "up") {
    be.copy(out, u);
  } else if (node == "act") {
    be.silu_forward(out, g);
  } else if (node == "glu") {
    be.swiglu_forward(out, g, u);
  } else if (node == "out") {
    be.swiglu_forward(g, g, u);  // g is scratch from here on
    be.matmul(out, g, false, w2, true, 1.0, 0.0);
  } else {
    throw UserError(fmt::format("activation-norm node '{}' cannot be computed from the experts", node),
                    "valid router-free nodes: gate, up, act, glu, out (latent needs factorized experts)");
  }
}

void SwigluTail::allocate(Backend& be, int64_t max_rows, int64_t width) {
  for (TensorBuf* b : {&g, &u, &act}) *b = TensorBuf(be, be.act_dtype(), {max_rows, width});
  for (TensorBuf* b : {&dg, &du, &dact}) *b = TensorBuf(be, be.dtype(), {max_rows, width});
}

void SwigluTail::forward(Backend& be, const ExpertBlocks& blk, const std::vector<Tensor>& w2, Tensor y) {
  be.swiglu_forward(blk.span(act), blk.span(g), blk.span(u));                          // a = SiLU(g) * u
  be.matmul_grouped(blk.rows(y), blk.rows(act), false, blk.pick(w2), true, 1.0, 0.0);  // y (rows, d) = a w2^T
}

void SwigluTail::backward(Backend& be, const ExpertBlocks& blk, const std::vector<Tensor>& w2,
                          const std::vector<Tensor>& dw2, Tensor dy) {
  const std::vector<Tensor> dys = blk.rows(dy);
  be.matmul_grouped(blk.rows(dact), dys, false, blk.pick(w2), false, 1.0, 0.0);              // da (rows, h) = dy w2
  be.matmul_grouped(blk.pick(dw2), dys, true, blk.rows(act), false, 1.0, 1.0);               // dw2 (d, h) += dy^T a
  be.swiglu_backward(blk.span(dg), blk.span(du), blk.span(dact), blk.span(g), blk.span(u));  // dg, du
}

}  // namespace am

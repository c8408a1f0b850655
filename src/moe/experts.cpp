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

}  // namespace am

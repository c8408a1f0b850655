#include "moe/experts.h"

#include <fmt/format.h>

namespace am {

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

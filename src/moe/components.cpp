// Builds the parts of an MoE layer from model.moe.* through the registered strategies
// (moe/strategies.h; docs/selection.md explains every option). Also registers scorer none: a dense
// model, whose one SwiGLU FFN is built here.
#include <cmath>

#include "moe/moe_layer.h"
#include "moe/strategies.h"

namespace am {

namespace {

const bool kRegistered = register_strategy([] {
  ScorerStrategy s;
  s.name = "none";
  s.order = 4;
  s.doc = "dense model (n_experts: 1)";
  s.params = [](const MoeConfig&, int) -> int64_t { return 0; };
  s.dense = true;
  return s;  // no factory: make_moe_components() builds the dense FFN itself
}());

}  // namespace

MoeComponents make_moe_components(Backend& be, const ModelConfig& cfg, int layer, int64_t seq_len, ExpertShard shard) {
  const MoeConfig& m = cfg.moe;
  const int d = cfg.d_model, n = m.n_experts;
  const double std = cfg.init_std, out_std = cfg.init_std / std::sqrt(2.0 * cfg.n_layers);
  const std::string l = "model.layers." + std::to_string(layer);
  MoeComponents c;

  if (m.dense()) {  // dense SwiGLU, under Llama's names
    const std::string p = l + ".mlp";
    c.experts = std::make_unique<SwigluExperts>(
        be, ExpertNames{p + ".gate_proj.weight", p + ".up_proj.weight", p + ".down_proj.weight", "", ""},
        ExpertShard{0, 1}, d, m.d_ffn, std, out_std, /*moe=*/false);
    return c;
  }

  const std::string p = l + ".block_sparse_moe";
  const std::string e = p + ".experts.{e}.";
  const ExpertNames names{e + "w1.weight", e + "w3.weight", e + "w2.weight", e + "w1_down.weight", e + "w1_up.weight"};
  if (shard.count == 0) shard = ExpertShard{0, n};
  c.experts = expert_strategy(m).make(be, ExpertArgs{cfg, names, shard, std, out_std});
  c.scorer = scorer_strategy(m).make(be, ScorerArgs{cfg, p, std, c.experts.get()});
  c.selector = selector_strategy(m).make(be, SelectorArgs{m, seq_len});
  for (const AuxLossInfo* loss : active_aux_losses(m)) c.aux.push_back(aux_loss_strategy(*loss).make(be, m));
  return c;
}

}  // namespace am

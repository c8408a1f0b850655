#include "moe/moe_metrics.h"

#include <cmath>

namespace am {

nlohmann::json moe_layer_metrics(const MoeLayer& layer, int top_k) {
  const MoeLayerStats& s = layer.stats();
  const double tokens = static_cast<double>(std::max<int64_t>(s.tokens, 1));
  const double mb = static_cast<double>(std::max(s.micro_batches, 1));
  int64_t routed = 0, selected_true = 0, selected_null = 0;
  for (int64_t c : s.expert_assignments) routed += c;
  for (int i = 0; i < layer.n_experts(); ++i) selected_true += s.selected[i];
  for (size_t j = static_cast<size_t>(layer.n_experts()); j < s.selected.size(); ++j) selected_null += s.selected[j];

  std::vector<double> load;
  double ent = 0;
  for (int64_t c : s.expert_assignments) {
    const double p = routed > 0 ? static_cast<double>(c) / static_cast<double>(routed) : 0.0;
    load.push_back(p);
    if (p > 0) ent -= p * std::log(p);
  }
  const double per_token = static_cast<double>(routed) / tokens;
  nlohmann::json j = {{"load", load},
                      {"ent_load", ent},
                      {"experts_per_token", per_token},
                      {"flops_vs_topk", top_k > 0 ? per_token / top_k : 0.0},
                      {"dropped_frac", selected_true > 0 ? static_cast<double>(s.dropped) / selected_true : 0.0},
                      {"unassigned_frac", static_cast<double>(s.unassigned) / tokens},
                      {"ent_conf", s.ent_conf_sum / mb}};
  if (layer.n_null() > 0) j["null_per_token"] = static_cast<double>(selected_null) / tokens;
  if (!s.act_norm_sum.empty()) {
    std::vector<double> norms;
    for (double x : s.act_norm_sum) norms.push_back(x / mb);
    j["act_norm"] = norms;
  }
  nlohmann::json aux = nlohmann::json::object();
  for (const auto& [name, sum] : s.aux_sum) aux[name] = sum / mb;
  j["aux"] = aux;
  return j;
}

}  // namespace am

// The per-layer MoE metrics of metrics.jsonl (../shared/spec/selection.md §5), from the counters a
// layer accumulated over a log interval.
#pragma once

#include "moe/moe_layer.h"

#include <nlohmann/json.hpp>

namespace am {

// {"load": [fraction of routed assignments per expert], "ent_load" (AoE Eq. 7, load normalised to
//  sum 1; log n = perfectly balanced), "experts_per_token" (true experts actually computed),
//  "flops_vs_topk" (experts_per_token / top_k: expert compute relative to plain top-k),
//  "null_per_token", "dropped_frac" (of the selected true-expert slots, dropped by capacity),
//  "unassigned_frac" (tokens that reached no expert), "ent_conf" (AoE Eq. 8, mean over tokens),
//  "act_norm": [mean activation norm per expert] (activation-norm scorers), "aux": {name: value}}
nlohmann::json moe_layer_metrics(const MoeLayer& layer, int top_k);

}  // namespace am

// The registry of MoE strategies (strategy.h): four lists sorted by `order`, filled during static
// initialisation by the strategies' own files (moe/strategies.h), read afterwards.
#include "config/strategy.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace am {

namespace {

template <typename Info>
std::vector<const Info*>& registry() {
  static std::vector<const Info*> list;
  return list;
}

template <typename Info>
void add(const Info* s) {
  std::vector<const Info*>& list = registry<Info>();
  for (const Info* r : list) {
    AM_CHECK(r->name != s->name, "strategy {} is registered twice", s->name);
  }
  list.push_back(s);
  std::stable_sort(list.begin(), list.end(), [](const Info* a, const Info* b) { return a->order < b->order; });
}

template <typename Info>
std::string names_of() {
  const std::vector<const Info*>& list = registry<Info>();
  std::string s;
  for (size_t i = 0; i < list.size(); ++i) {
    s += (i == 0 ? "" : i + 1 == list.size() ? " or " : ", ") + list[i]->name;
  }
  return s;
}

template <typename Info>
const Info& find(const std::string& name, const char* key) {
  for (const Info* s : registry<Info>()) {
    if (s->name == name) return *s;
  }
  throw UserError(fmt::format("{} '{}' is not a registered strategy", key, name),
                  fmt::format("valid: {}", names_of<Info>()));
}

// A family's type key: the choices and their docs come from the registered strategies.
struct TypeKey {
  std::string path, dflt, what;  // what: the doc's lead ("how experts are chosen from the scores")
  Binding field;
};

template <typename Info>
KeySpec type_key(const TypeKey& t) {
  std::vector<std::string> choices;
  std::string doc = t.what;
  for (const Info* s : registry<Info>()) {
    choices.push_back(s->name);
    doc += fmt::format("{} {} = {}", choices.size() == 1 ? ":" : ";", s->name, s->doc);
  }
  return config_enum_key(t.path, t.dflt, choices, doc, t.field);
}

template <typename Info>
void append_keys(std::vector<KeySpec>& keys) {
  for (const Info* s : registry<Info>()) keys.insert(keys.end(), s->keys.begin(), s->keys.end());
}

// Selector and loss rules: a dense model has neither, so they do not apply to it.
template <typename Info>
void append_rules(std::vector<CrossRule>& rules, bool skip_dense) {
  for (const Info* s : registry<Info>()) {
    for (const CrossRule& r : s->rules) {
      if (!skip_dense) {
        rules.push_back(r);
        continue;
      }
      rules.push_back({r.doc, [check = r.check](const Config& c, const ShowKey& show) -> std::optional<std::string> {
                         if (c.model.moe.dense()) return std::nullopt;
                         return check(c, show);
                       }});
    }
  }
}

}  // namespace

void register_strategy_info(const ExpertInfo* s) {
  AM_CHECK(s->hidden_width && s->params, "expert strategy {} registers no hidden_width or params", s->name);
  add(s);
}
void register_strategy_info(const ScorerInfo* s) {
  AM_CHECK(bool(s->params), "scorer strategy {} registers no params", s->name);
  add(s);
}
void register_strategy_info(const SelectorInfo* s) {
  AM_CHECK(s->experts_per_token && s->per_token_note && s->drops_tokens && s->mixtral_routing,
           "selector strategy {} registers no experts_per_token, per_token_note, drops_tokens or mixtral_routing",
           s->name);
  add(s);
}
void register_strategy_info(const AuxLossInfo* s) {
  AM_CHECK(bool(s->coefficient), "aux loss strategy {} registers no coefficient", s->name);
  add(s);
}

const std::vector<const ExpertInfo*>& expert_strategies() { return registry<ExpertInfo>(); }
const std::vector<const ScorerInfo*>& scorer_strategies() { return registry<ScorerInfo>(); }
const std::vector<const SelectorInfo*>& selector_strategies() { return registry<SelectorInfo>(); }
const std::vector<const AuxLossInfo*>& aux_loss_strategies() { return registry<AuxLossInfo>(); }

const ExpertInfo& expert_of(const MoeConfig& m) { return find<ExpertInfo>(m.expert.type, "model.moe.expert.type"); }
const ScorerInfo& scorer_of(const MoeConfig& m) { return find<ScorerInfo>(m.scorer.type, "model.moe.scorer.type"); }
const SelectorInfo& selector_of(const MoeConfig& m) {
  return find<SelectorInfo>(m.selector.type, "model.moe.selector.type");
}

std::vector<const AuxLossInfo*> active_aux_losses(const MoeConfig& m) {
  std::vector<const AuxLossInfo*> on;
  if (scorer_of(m).dense) return on;
  for (const AuxLossInfo* s : registry<AuxLossInfo>()) {
    if (s->active(m)) on.push_back(s);
  }
  return on;
}

std::string strategy_names(Family f) {
  switch (f) {
    case Family::Expert:
      return names_of<ExpertInfo>();
    case Family::Scorer:
      return names_of<ScorerInfo>();
    case Family::Selector:
      return names_of<SelectorInfo>();
    case Family::AuxLoss:
      return names_of<AuxLossInfo>();
  }
  return "";
}

#define FIELD(member) bind([](auto& c) -> auto& { return c.member; })

std::vector<KeySpec> strategy_keys() {
  std::vector<KeySpec> keys;
  keys.push_back(type_key<ExpertInfo>({"model.moe.expert.type", "swiglu", "expert FFN", FIELD(model.moe.expert.type)}));
  append_keys<ExpertInfo>(keys);
  keys.push_back(type_key<ScorerInfo>(
      {"model.moe.scorer.type", "router", "how tokens score experts", FIELD(model.moe.scorer.type)}));
  append_keys<ScorerInfo>(keys);
  keys.push_back(type_key<SelectorInfo>(
      {"model.moe.selector.type", "topk", "how experts are chosen from the scores", FIELD(model.moe.selector.type)}));
  append_keys<SelectorInfo>(keys);
  append_keys<AuxLossInfo>(keys);
  return keys;
}

#undef FIELD

std::vector<CrossRule> strategy_rules() {
  std::vector<CrossRule> rules;
  append_rules<ExpertInfo>(rules, false);
  append_rules<ScorerInfo>(rules, false);
  append_rules<SelectorInfo>(rules, true);
  append_rules<AuxLossInfo>(rules, true);
  return rules;
}

}  // namespace am

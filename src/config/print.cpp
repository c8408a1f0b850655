// Printing configs: the start-up table, the resolved YAML, and docs/configs.md, all from the
// schema rows.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "config/schema.h"
#include "core/error.h"

namespace am {

namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  return parts;
}

std::string escape_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string valid_text(const KeySpec& key) {
  switch (key.kind()) {
    case KeyKind::Enum: {
      std::vector<std::string> quoted;
      for (const std::string& c : key.choices) quoted.push_back("`" + c + "`");
      return fmt::format("{}", fmt::join(quoted, ", "));
    }
    case KeyKind::Bool:
      return "`true`, `false`";
    case KeyKind::Int:
    case KeyKind::Float:
      return key.range.lo || key.range.hi ? key.range.str() : "any";
    case KeyKind::UInt64:
      return "0 .. 2^64-1";
    case KeyKind::String:
      return "any string";
    case KeyKind::Schedule:
      return (key.range.lo || key.range.hi ? "each value " + key.range.str() + "; " : "") +
             "a number, or `[[step, value], ...]` with steps rising from 0";
  }
  return "";
}

}  // namespace

std::string config_table(const Config& cfg) {
  size_t wk = 3, wv = 5;  // "key", "value"
  for (const ResolvedKey& r : cfg.resolved) {
    wk = std::max(wk, r.path.size());
    wv = std::max(wv, r.value.size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {}\n", "key", wk, "value", wv, "source");
  for (const ResolvedKey& r : cfg.resolved) {
    out += fmt::format("{:<{}}  {:<{}}  {}\n", r.path, wk, r.value, wv, r.source);
  }
  return out;
}

std::string config_to_yaml(const Config& cfg) {
  std::string out;
  std::vector<std::string> open;  // the sections currently open, outermost first
  for (const KeySpec& key : config_schema()) {
    std::vector<std::string> parts = split_path(key.path);
    const std::string name = parts.back();
    parts.pop_back();
    size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    open.resize(common);
    for (size_t i = common; i < parts.size(); ++i) {
      out += fmt::format("{:{}}{}:\n", "", 2 * i, parts[i]);
      open.push_back(parts[i]);
    }
    out += fmt::format("{:{}}{}: {}\n", "", 2 * parts.size(), name, format_value(key.field.get(cfg)));
  }
  return out;
}

std::string config_docs_markdown() {
  std::string md = R"(# Config reference

<!-- Generated from src/config/schema.cpp and the MoE strategies' registrations (src/moe/, config/strategy.h)
     by am::config_docs_markdown(); do not edit by hand.
     Regenerate with `autonomoe config --docs > docs/configs.md`, or
     `AM_UPDATE_DOCS=1 build/tests/autonomoe_tests "[config-docs]"`. -->

A run is described by one YAML file of sections (`run:`, `model:`, `data:`, ...), each a map of
keys. Every key is listed below with its type, default and valid values; a key marked
**required** has no default.

- **extends**: a file may start with `extends: base.yaml` (a path relative to that file) to inherit
  another config; chains are allowed, cycles are an error. Maps merge deeply and the extending
  file wins; a value of another kind (a scalar where the base has a map, or the reverse) replaces
  the inherited one.
- **--set key.path=value** on the command line overrides one key after all files are merged; the
  value is parsed as YAML (`--set train.lr=3e-4`, `--set model.moe={n_experts: 1}`).
- **Validation**: unknown keys (with the closest valid key suggested), wrong types, values out of
  range (and floats beyond fp32's ±3.4028235e+38: training computes in fp32), unknown enum values, missing required keys and the cross-field rules at the end of this
  page are all errors. Each message names the file and line (or `--set`), the key, the value and
  what would be valid.
- **Schedules** (type `schedule`): a coefficient that may change during training. A number is a
  constant; a list of `[step, value]` pairs with integer steps strictly increasing from 0 is
  piecewise constant, each value holding from its step until the next:
  `null_load_balance: [[0, 0.02], [50000, 1.0e-4]]` (AdaMoE's annealing).
- **Dense models** (`scorer.type: none`, `n_experts: 1`) ignore `model.moe.selector` and
  `model.moe.aux`. Keys marked (topk), (topp), (act_norm), ... are read only for that choice;
  the cross-field rules at the end reject settings that would have no effect and mislead.
- At start-up the resolved config is printed as a table (key, value, source), and
  `runs/<name>/config.resolved.yaml` holds it with every key; loading that file again gives the
  same config. Floats are written with a `.` in the mantissa (`1.0e-08`), which every YAML parser
  (YAML 1.1's PyYAML too) reads as a float.
- `autonomoe config --docs` prints this page.
)";
  for (const auto& [section, doc] : config_sections()) {
    md += fmt::format("\n## {}\n\n{}.\n\n", section, doc);
    md += "| key | type | default | valid | meaning |\n";
    md += "|---|---|---|---|---|\n";
    for (const KeySpec& key : config_schema()) {
      if (split_path(key.path).front() != section) continue;
      md += fmt::format("| `{}` | {} | {} | {} | {} |\n", key.path, kind_name(key.kind()),
                        key.required ? "**required**" : "`" + key.default_value + "`", escape_cell(valid_text(key)),
                        escape_cell(key.doc));
    }
  }
  md += "\n## Cross-field rules\n\n";
  for (const CrossRule& rule : config_rules()) md += "- " + rule.doc + "\n";
  return md;
}

void write_config_docs(const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << config_docs_markdown();
    out.close();
    if (!out) fail("could not write '{}'", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("could not rename '{}' to '{}': {}", tmp, path, ec.message());
}

}  // namespace am

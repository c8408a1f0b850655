// Reading config files (with `extends:`) and --set overrides into flat, merged entries.
#include "config/sources.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "config/schema.h"
#include "config/suggest.h"
#include "core/error.h"
#include "io/regular_file.h"

namespace fs = std::filesystem;

namespace am {

namespace {

const char* node_kind(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a sequence";
  if (n.IsNull()) return "an empty value";
  return "a scalar";
}

// Names the place a key was written: its source for Config::resolved and its origin for messages.
struct Place {
  std::string source, origin;
};
using Locate = std::function<Place(const YAML::Mark&)>;

// One value as an entry; a sequence keeps its elements (recursively) with their own places.
ConfigEntry entry_of(const YAML::Node& v, const std::string& path, const Place& place, const Locate& locate) {
  using Kind = ConfigEntry::Kind;
  const Kind kind = v.IsScalar() ? Kind::Scalar : v.IsMap() ? Kind::Map : v.IsSequence() ? Kind::Sequence : Kind::Null;
  ConfigEntry e{path,         kind, v.IsScalar() ? v.Scalar() : "", v.IsScalar() && v.Tag() == "!", place.source,
                place.origin, {}};
  if (v.IsSequence()) {
    for (const YAML::Node& item : v) {
      e.items.push_back(entry_of(item, "", locate(item.Mark()), locate));
    }
  }
  return e;
}

// Appends the leaves of map `node` under `prefix`. Maps under known sections are followed; any
// other value (a key's value, an unknown name, a section set to a scalar) becomes one entry.
// A section set to null (`moe:` with every child commented out) adds nothing.
// `skip` names a top-level key to leave out (extends:, which the reader handles).
void flatten(const YAML::Node& node, const std::string& prefix, const Locate& locate, std::vector<ConfigEntry>& out,
             std::map<std::string, std::string>& seen, std::vector<std::string>& errors, const std::string& skip = "") {
  for (const auto& kv : node) {
    const Place place = locate(kv.first.Mark());
    if (prefix.empty() && !skip.empty() && kv.first.IsScalar() && kv.first.Scalar() == skip) {
      continue;
    }
    if (!kv.first.IsScalar()) {
      errors.push_back(fmt::format("{}: a key under {} is {}, not a name", place.origin,
                                   prefix.empty() ? "the top level" : prefix, node_kind(kv.first)));
      continue;
    }
    const std::string path = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
    if (auto [it, fresh] = seen.emplace(path, place.origin); !fresh) {
      errors.push_back(fmt::format("{}: {}: duplicate key (first set at {})", place.origin, path, it->second));
      continue;
    }
    if (is_section(path) && kv.second.IsMap()) {
      flatten(kv.second, path, locate, out, seen, errors);
    } else if (!(is_section(path) && kv.second.IsNull())) {
      out.push_back(entry_of(kv.second, path, place, locate));
    }
  }
}

bool covers(const std::string& outer, const std::string& inner) {
  return inner == outer ||
         (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 && inner[outer.size()] == '.');
}

// Deep merge of flat entries: each child entry replaces the base entries at, under, or above its
// path (so a scalar replaces a whole inherited section and a section replaces a scalar).
void merge_into(std::vector<ConfigEntry>& base, std::vector<ConfigEntry> child) {
  for (ConfigEntry& c : child) {
    std::erase_if(base, [&](const ConfigEntry& b) { return covers(c.path, b.path) || covers(b.path, c.path); });
    base.push_back(std::move(c));
  }
}

YAML::Node parse_file(const std::string& path, const std::string& named_by) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (named_by.empty()) {
      throw UserError(fmt::format("config file '{}' not found", path),
                      "give the path of a YAML config, e.g. configs/tiny.yaml");
    }
    throw UserError(fmt::format("{}: extends: config file '{}' not found", named_by, path),
                    "extends paths are relative to the directory of the file that names them");
  }
  const std::string text = read_regular_file(path, "config file");
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UserError(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg),
                    "check the indentation, colons and brackets around that line");
  }
}

std::vector<ConfigEntry> read_chain(const std::string& path, const std::string& named_by,
                                    std::vector<std::string>& chain, std::vector<std::string>& chain_ids,
                                    std::vector<std::string>& errors) {
  std::error_code ec;
  std::string id = fs::weakly_canonical(path, ec).string();
  if (ec) id = fs::absolute(path).lexically_normal().string();
  if (auto it = std::find(chain_ids.begin(), chain_ids.end(), id); it != chain_ids.end()) {
    std::vector<std::string> cycle(chain.begin() + (it - chain_ids.begin()), chain.end());
    cycle.push_back(path);
    throw UserError(fmt::format("{}: extends cycle: {}", named_by, fmt::join(cycle, " -> ")),
                    "remove one of these extends: lines");
  }
  const YAML::Node root = parse_file(path, named_by);  // const: operator[] must not insert
  if (root.IsNull()) return {};                        // an empty file sets nothing
  if (!root.IsMap()) {
    throw UserError(
        fmt::format("{}:{}: the top level is {}, not a map of sections", path, root.Mark().line + 1, node_kind(root)),
        "a config looks like `model:` / `  d_model: 64` (see docs/configs.md)");
  }
  chain.push_back(path);
  chain_ids.push_back(id);

  std::vector<ConfigEntry> merged;
  if (YAML::Node ext = root["extends"]) {
    const std::string here = fmt::format("{}:{}", path, ext.Mark().line + 1);
    if (!ext.IsScalar() || ext.Scalar().empty()) {
      throw UserError(fmt::format("{}: extends: expected a file name, got {}", here, node_kind(ext)),
                      "write e.g. `extends: base.yaml` (relative to this file)");
    }
    fs::path parent = fs::path(ext.Scalar());
    if (parent.is_relative()) parent = fs::path(path).parent_path() / parent;
    merged = read_chain(parent.lexically_normal().string(), here, chain, chain_ids, errors);
  }
  Locate locate = [&path](const YAML::Mark& m) {
    std::string at = fmt::format("{}:{}", path, m.line + 1);
    return Place{at, at};
  };
  std::vector<ConfigEntry> mine;
  std::map<std::string, std::string> seen;
  flatten(root, "", locate, mine, seen, errors, "extends");
  merge_into(merged, std::move(mine));

  chain.pop_back();
  chain_ids.pop_back();
  return merged;
}

// {names[i]: {names[i+1]: ... leaf}}
YAML::Node nest(const std::vector<std::string>& names, size_t i, const YAML::Node& leaf) {
  if (i == names.size()) return leaf;
  YAML::Node map(YAML::NodeType::Map);
  map[names[i]] = nest(names, i + 1, leaf);
  return map;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

std::string ConfigEntry::describe() const {
  switch (kind) {
    case Kind::Scalar:
      return quoted ? "the quoted string \"" + text + "\"" : "'" + text + "'";
    case Kind::Null:
      return "an empty value";
    case Kind::Map:
      return "a map";
    case Kind::Sequence:
      return "a sequence";
  }
  return "?";
}

std::vector<ConfigEntry> read_config_file(const std::string& path, std::vector<std::string>& errors) {
  std::vector<std::string> chain, chain_ids;
  return read_chain(path, "", chain, chain_ids, errors);
}

void apply_overrides(std::vector<ConfigEntry>& entries, const std::vector<std::string>& overrides,
                     std::vector<std::string>& errors) {
  for (const std::string& ov : overrides) {
    const std::string origin = "--set " + ov;
    const size_t eq = ov.find('=');
    const std::string key = eq == std::string::npos ? "" : trim(ov.substr(0, eq));
    if (key.empty()) {
      errors.push_back(
          fmt::format("{}: malformed override; expected key.path=value, "
                      "e.g. --set model.d_model=64",
                      origin));
      continue;
    }
    const std::string text = ov.substr(eq + 1);
    if (key == "extends") {
      errors.push_back(fmt::format("{}: extends cannot be overridden; put it in the file", origin));
      continue;
    }
    if (!find_key(key) && !is_section(key)) {
      errors.push_back(fmt::format("{}: unknown key '{}'; {}", origin, key, unknown_key_hint(key)));
      continue;
    }
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      errors.push_back(
          fmt::format("{}: the value '{}' is not valid YAML ({}); quote it, e.g. "
                      "--set {}='\"{}\"'",
                      origin, text, e.msg, key, text));
      continue;
    }
    // Nest as {model: {moe: value}} so a section set to a flow map flattens like a file does.
    std::vector<std::string> names;
    std::stringstream parts(key);
    for (std::string part; std::getline(parts, part, '.');) names.push_back(part);
    const YAML::Node wrapped = nest(names, 0, value);
    Locate locate = [&origin](const YAML::Mark&) { return Place{"--set", origin}; };
    std::vector<ConfigEntry> mine;
    std::map<std::string, std::string> seen;
    flatten(wrapped, "", locate, mine, seen, errors);
    merge_into(entries, std::move(mine));
  }
}

}  // namespace am

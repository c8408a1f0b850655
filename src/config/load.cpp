// load_config(): read files and overrides, check every key against the schema, fill the Config,
// check the cross-field rules, and report every problem found in one UserError.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>

#include "config/config.h"
#include "config/schema.h"
#include "config/sources.h"
#include "config/suggest.h"
#include "core/error.h"

namespace am {

namespace {

const char* const kDocsHint = "docs/configs.md lists every key with its type, default and valid values";

// The YAML scalar text of an entry's value for `key`, or an error.
std::optional<std::string> scalar_text(const KeySpec& key, const ConfigEntry& e, std::string& error) {
  const bool textual = key.kind() == KeyKind::String || key.kind() == KeyKind::Enum;
  if (e.kind == ConfigEntry::Kind::Scalar && (textual || !e.quoted)) return e.text;
  if (e.kind == ConfigEntry::Kind::Null && key.kind() == KeyKind::String) return std::string();
  error = fmt::format("expected {}, got {}", kind_expectation(key), e.describe());
  return std::nullopt;
}

// "an integer >= 1", "a number in [0, 1)", "one of cpu, cuda, auto"
std::string what_is_valid(const KeySpec& key) {
  std::string s = kind_expectation(key);
  if ((key.kind() == KeyKind::Int || key.kind() == KeyKind::Float) && (key.range.lo || key.range.hi)) {
    s += (key.range.lo && key.range.hi ? " in " : " ") + key.range.str();
  }
  if (key.kind() == KeyKind::Schedule && (key.range.lo || key.range.hi)) {
    s += ", every value " + key.range.str();
  }
  return s;
}

// The value that entry `e` gives `key`; on a problem, nullopt, with `error` saying what and
// `where` where (a schedule's bad item has its own line).
std::optional<KeyValue> entry_value(const KeySpec& key, const ConfigEntry& e, std::string& error, std::string& where) {
  std::optional<KeyValue> v;
  if (key.kind() == KeyKind::Schedule && e.kind == ConfigEntry::Kind::Sequence) {
    if (std::optional<Schedule> s = parse_schedule(key, e, error, where)) v = KeyValue(*s);
  } else if (std::optional<std::string> text = scalar_text(key, e, error)) {
    v = parse_value(key, *text, error);
  }
  return v;
}

// What the entries left set: where each schema key was set, and which hold invalid values.
struct SetKeys {
  std::map<std::string, std::string> sources;  // schema key -> where it was set
  std::set<std::string> invalid;               // schema keys set to invalid values
};

// Every entry in the order it was written: set schema keys, report everything else.
SetKeys set_entries(const std::vector<ConfigEntry>& entries, Config& cfg, std::vector<std::string>& errors) {
  SetKeys set;
  for (const ConfigEntry& e : entries) {
    const KeySpec* key = find_key(e.path);
    if (!key) {
      errors.push_back(
          is_section(e.path)
              ? fmt::format("{}: {}: expected a section (a map of keys), got {}", e.origin, e.path, e.describe())
              : fmt::format("{}: unknown key '{}'; {}", e.origin, e.path, unknown_key_hint(e.path)));
      continue;
    }
    std::string error, where = e.origin;
    std::optional<KeyValue> v = entry_value(*key, e, error, where);
    if (!v) {
      errors.push_back(fmt::format("{}: {}: {}", where, key->path, error));
      set.invalid.insert(key->path);
      continue;
    }
    key->field.set(cfg, *v);
    set.sources[key->path] = e.source;
    set.invalid.erase(key->path);
  }
  return set;
}

// Then every schema key in order: defaults, missing required keys, the resolved list.
void resolve_keys(const std::string& path, const SetKeys& set, Config& cfg, std::vector<std::string>& errors) {
  for (const KeySpec& key : config_schema()) {
    if (set.invalid.count(key.path)) continue;  // already reported
    auto it = set.sources.find(key.path);
    std::string source = it == set.sources.end() ? "default" : it->second;
    if (it == set.sources.end() && key.required) {
      errors.push_back(
          fmt::format("{}: missing required key {}: {}, {}; set it in the file, a "
                      "file it extends, or with --set {}=...",
                      path, key.path, key.doc, what_is_valid(key), key.path));
      continue;
    }
    if (it == set.sources.end()) {
      std::string error;
      std::optional<KeyValue> v = parse_value(key, YAML::Load(key.default_value).Scalar(), error);
      AM_CHECK(v.has_value(), "schema default of {} does not parse: {}", key.path, error);
      key.field.set(cfg, *v);
    }
    if (key.path == "run.name" && cfg.run.name.empty()) {
      cfg.run.name = std::filesystem::path(path).stem().string();
    }
    cfg.resolved.push_back(ResolvedKey{key.path, format_value(key.field.get(cfg)), source});
  }
}

// The cross-field rules, which only make sense once every key holds a valid value.
void check_cross_rules(const std::string& path, const Config& cfg, std::vector<std::string>& errors) {
  ShowKey show = [&cfg](const std::string& key_path) {
    for (const ResolvedKey& r : cfg.resolved) {
      if (r.path == key_path) return fmt::format("{} = {} ({})", r.path, r.value, r.source);
    }
    AM_CHECK(false, "cross-field rule names {}, which is not a schema key", key_path);
    return std::string();
  };
  for (const CrossRule& rule : config_rules()) {
    if (std::optional<std::string> msg = rule.check(cfg, show)) {
      errors.push_back(fmt::format("{}: {}", path, *msg));
    }
  }
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::vector<std::string> errors;
  std::vector<ConfigEntry> entries = read_config_file(path, errors);
  apply_overrides(entries, overrides, errors);
  Config cfg;
  cfg.source_path = path;
  const SetKeys set = set_entries(entries, cfg, errors);
  resolve_keys(path, set, cfg, errors);
  if (errors.empty()) check_cross_rules(path, cfg, errors);
  if (!errors.empty()) {
    throw UserError(fmt::format("invalid config {} ({} problem{}):\n  {}", path, errors.size(),
                                errors.size() == 1 ? "" : "s", fmt::join(errors, "\n  ")),
                    kDocsHint);
  }
  return cfg;
}

}  // namespace am

// Reading a sweep file: top-level keys, the base config, and every override checked against the
// config schema (key known, value of the key's type and range) with the line that wrote it.
#include "sweep/sweep_file.h"

#include "config/schema.h"
#include "config/suggest.h"
#include "core/error.h"
#include "io/regular_file.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <set>

namespace am {
namespace fs = std::filesystem;
namespace {

const std::vector<std::string> kTopKeys = {"base", "name", "set", "grid", "points"};

const char* const kFormatHint = "docs/sweeps.md describes the sweep file; configs/sweeps/tiny_dlow.yaml is an example";

const char* node_kind(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "an empty value";
  return "a scalar";
}

// The value as a point id shows it: numbers in their shortest exact form (3.0e-3 -> 0.003).
std::string label_of(const KeyValue& v) {
  struct Visitor {
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(uint64_t x) const { return std::to_string(x); }
    std::string operator()(bool x) const { return x ? "true" : "false"; }
    std::string operator()(double x) const { return fmt::format("{}", x); }
    std::string operator()(const std::string& x) const { return x.empty() ? "none" : x; }
    std::string operator()(const Schedule& x) const {
      return x.points.size() == 1 ? fmt::format("{}", x.points[0].second) : format_value(KeyValue(x));
    }
  };
  return std::visit(Visitor{}, v);
}

// `node` as a value of `key`; on a problem, nullopt and `error` says what was expected.
std::optional<SweepValue> make_value(const KeySpec& key, const YAML::Node& node, const std::string& origin,
                                     std::string& error) {
  const bool textual = key.kind() == KeyKind::String || key.kind() == KeyKind::Enum;
  SweepValue v{key.path, "", "", origin};
  if (node.IsNull() && key.kind() == KeyKind::String) {
    v.label = "none";  // an empty string: "off" for keys like data.val
    return v;
  }
  if (!node.IsScalar()) {
    error = fmt::format("expected {}, got {}", kind_expectation(key), node_kind(node));
    return std::nullopt;
  }
  const std::string text = node.Scalar();
  const bool quoted = node.Tag() == "!";
  if (quoted && !textual) {
    error = fmt::format("expected {}, got the quoted string \"{}\"", kind_expectation(key), text);
    return std::nullopt;
  }
  std::optional<KeyValue> parsed = parse_value(key, text, error);
  if (!parsed) return std::nullopt;
  if (quoted) {
    YAML::Emitter e;
    e << YAML::DoubleQuoted << text;
    v.text = e.c_str();
  } else {
    v.text = text;
  }
  v.label = label_of(*parsed);
  return v;
}

// Calls `leaf(path, value, line)` for every leaf of the map `node`: maps under config sections
// are followed (`train: {lr: ...}` is `train.lr`), anything else is a leaf. Duplicate paths are
// errors.
using LeafFn = std::function<void(const std::string&, const YAML::Node&, int)>;
void for_each_leaf(const YAML::Node& node, const std::string& prefix, const std::string& file,
                   std::set<std::string>& seen, std::vector<std::string>& errors, const LeafFn& leaf) {
  for (const auto& kv : node) {
    const int line = kv.first.Mark().line + 1;
    if (!kv.first.IsScalar()) {
      errors.push_back(fmt::format("{}:{}: a key is {}, not a name", file, line, node_kind(kv.first)));
      continue;
    }
    const std::string path = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
    if (!seen.insert(path).second) {
      errors.push_back(fmt::format("{}:{}: {}: duplicate key", file, line, path));
      continue;
    }
    if (is_section(path) && kv.second.IsMap()) {
      for_each_leaf(kv.second, path, file, seen, errors, leaf);
    } else {
      leaf(path, kv.second, line);
    }
  }
}

// The schema key `path` as used in `part` (set / grid / points), or null after reporting why not.
const KeySpec* sweep_key(const std::string& path, const std::string& part, const std::string& where,
                         std::vector<std::string>& errors) {
  // "file:7: grid" for the sweep file, "--set k=v" (which says it all) for the command line
  const std::string at = part == "--set" ? where : where + ": " + part;
  const KeySpec* key = find_key(path);
  if (!key) {
    if (is_section(path)) {
      errors.push_back(
          fmt::format("{}: {} is a config section, not a key; list its keys "
                      "(e.g. {}.<key>: ...)",
                      at, path, path));
    } else {
      errors.push_back(fmt::format("{}: '{}' is not a config key; {}", at, path, unknown_key_hint(path)));
    }
    return nullptr;
  }
  if (path == "run.name") {
    errors.push_back(
        fmt::format("{}: run.name is set by the sweep (<sweep name>/<point id>); "
                    "name the sweep with the top-level name: key",
                    at));
    return nullptr;
  }
  if (path == "run.out_dir" && part != "set" && part != "--set") {
    errors.push_back(
        fmt::format("{}: run.out_dir cannot vary (all points live under "
                    "<run.out_dir>/<sweep name>); put it under set: or pass --set",
                    at));
    return nullptr;
  }
  return key;
}

std::string closest_top_key(const std::string& k) {
  std::string best;
  int best_d = 3;
  for (const std::string& c : kTopKeys) {
    if (int d = edit_distance(k, c); d < best_d) best_d = d, best = c;
  }
  return best;
}

bool valid_name(const std::string& s) {
  return !s.empty() && s[0] != '.' && s.size() <= 100 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

YAML::Node load_yaml(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw UserError(fmt::format("sweep file '{}' not found", path),
                    "give the path of a sweep YAML, e.g. configs/sweeps/tiny_dlow.yaml");
  }
  try {
    return YAML::Load(read_regular_file(path, "sweep file"));
  } catch (const YAML::ParserException& e) {
    throw UserError(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg),
                    "check the indentation, colons and brackets around that line");
  } catch (const YAML::Exception& e) {
    fail("sweep file '{}' could not be read: {}", path, e.what());
  }
}

// "file:line" of `n` in the sweep file `path`.
std::string line_of(const std::string& path, const YAML::Node& n) {
  return fmt::format("{}:{}", path, n.Mark().line + 1);
}

// Whether `k` is a top-level key seen for the first time; if not, the problem goes to `errors`.
bool new_top_key(const std::string& k, const std::string& where, std::set<std::string>& top_seen,
                 std::vector<std::string>& errors) {
  if (std::find(kTopKeys.begin(), kTopKeys.end(), k) == kTopKeys.end()) {
    const std::string near = closest_top_key(k);
    errors.push_back(fmt::format("{}: unknown top-level key '{}'; {}valid keys: {}", where, k,
                                 near.empty() ? "" : fmt::format("did you mean {}? ", near),
                                 fmt::join(kTopKeys, ", ")));
    return false;
  }
  if (!top_seen.insert(k).second) {
    errors.push_back(fmt::format("{}: {}: duplicate key", where, k));
    return false;
  }
  return true;
}

void read_base(const YAML::Node& v, const std::string& where, SweepFile& sf, std::vector<std::string>& errors) {
  if (!v.IsScalar() || v.Scalar().empty()) {
    errors.push_back(fmt::format("{}: base: expected the path of a config file, got {}", where, node_kind(v)));
    return;
  }
  const fs::path p(v.Scalar());
  sf.base = (p.is_absolute() ? p : fs::path(sf.path).parent_path() / p).lexically_normal().string();
  std::error_code ec;
  if (!fs::exists(sf.base, ec)) {
    errors.push_back(
        fmt::format("{}: base: config file '{}' not found (base '{}' is relative "
                    "to the sweep file's directory)",
                    where, sf.base, v.Scalar()));
  }
}

void read_name(const YAML::Node& v, const std::string& where, SweepFile& sf, std::vector<std::string>& errors) {
  if (!v.IsScalar() || !valid_name(v.Scalar())) {
    errors.push_back(
        fmt::format("{}: name: expected a name of letters, digits, '_', '-' and '.' "
                    "(not starting with '.'), got {}",
                    where, v.IsScalar() ? "'" + v.Scalar() + "'" : node_kind(v)));
    return;
  }
  sf.name = v.Scalar();
}

// Appends to `out` each override of the map `map` (under set: or one of points:) that is a valid
// value of its key.
void read_overrides(const YAML::Node& map, const char* part, const std::string& path, std::vector<SweepValue>& out,
                    std::vector<std::string>& errors) {
  std::set<std::string> seen;
  for_each_leaf(map, "", path, seen, errors, [&](const std::string& key, const YAML::Node& val, int line) {
    const std::string origin = fmt::format("{}:{}", path, line);
    const KeySpec* spec = sweep_key(key, part, origin, errors);
    std::string error;
    if (!spec) return;
    if (auto sv = make_value(*spec, val, origin, error)) {
      out.push_back(*sv);
    } else {
      errors.push_back(fmt::format("{}: {}: {}: {}", origin, part, key, error));
    }
  });
}

void read_set(const YAML::Node& v, const std::string& where, SweepFile& sf, std::vector<std::string>& errors) {
  if (v.IsNull()) return;
  if (!v.IsMap()) {
    errors.push_back(fmt::format("{}: set: expected a map of config keys to values, got {}", where, node_kind(v)));
    return;
  }
  read_overrides(v, "set", sf.path, sf.set, errors);
}

// The axis of the grid key `key` listing `val`; a value with a problem is left out of it.
SweepAxis read_axis(const KeySpec& spec, const std::string& key, const YAML::Node& val, const std::string& path,
                    std::vector<std::string>& errors) {
  SweepAxis axis{key, {}};
  for (const YAML::Node& item : val) {
    const std::string item_origin = line_of(path, item);
    std::string error;
    std::optional<SweepValue> sv = make_value(spec, item, item_origin, error);
    if (!sv) {
      errors.push_back(fmt::format("{}: grid: {}: {}", item_origin, key, error));
      continue;
    }
    for (const SweepValue& prev : axis.values) {
      if (prev.label == sv->label) {
        errors.push_back(fmt::format("{}: grid: {}: the value {} is listed twice", item_origin, key, sv->label));
      }
    }
    axis.values.push_back(*sv);
  }
  return axis;
}

void read_grid(const YAML::Node& v, const std::string& where, SweepFile& sf, std::vector<std::string>& errors) {
  if (!v.IsMap() || v.size() == 0) {
    errors.push_back(fmt::format("{}: grid: expected a map of config keys to lists of values, got {}", where,
                                 v.IsMap() ? "an empty map" : node_kind(v)));
    return;
  }
  const std::string& path = sf.path;
  std::set<std::string> seen;
  for_each_leaf(v, "", path, seen, errors, [&](const std::string& key, const YAML::Node& val, int line) {
    const std::string origin = fmt::format("{}:{}", path, line);
    const KeySpec* spec = sweep_key(key, "grid", origin, errors);
    if (!spec) return;
    if (!val.IsSequence() || val.size() == 0) {
      errors.push_back(
          fmt::format("{}: grid: {}: expected a non-empty list of values, e.g. "
                      "{}: [a, b], got {}",
                      origin, key, key, val.IsSequence() ? "an empty list" : node_kind(val)));
      return;
    }
    sf.grid.push_back(read_axis(*spec, key, val, path, errors));
  });
}

void read_points(const YAML::Node& v, const std::string& where, SweepFile& sf, std::vector<std::string>& errors) {
  if (!v.IsSequence() || v.size() == 0) {
    errors.push_back(
        fmt::format("{}: points: expected a non-empty list of maps of config keys "
                    "to values, got {}",
                    where, v.IsSequence() ? "an empty list" : node_kind(v)));
    return;
  }
  for (const YAML::Node& p : v) {
    const std::string p_origin = line_of(sf.path, p);
    if (!p.IsMap() || p.size() == 0) {
      errors.push_back(
          fmt::format("{}: points: each point is a non-empty map of config keys to "
                      "values, e.g. {{train.lr: 0.01}}, got {}",
                      p_origin, p.IsMap() ? "an empty map" : node_kind(p)));
      continue;
    }
    std::vector<SweepValue> point;
    read_overrides(p, "points", sf.path, point, errors);
    sf.points.push_back(point);
    sf.point_origins.push_back(p_origin);
  }
}

// Reads the value `v` of the top-level key `k` (one of kTopKeys) into `sf`.
void read_top_key(const std::string& k, const YAML::Node& v, const std::string& where, SweepFile& sf,
                  std::vector<std::string>& errors) {
  if (k == "base") {
    read_base(v, where, sf, errors);
  } else if (k == "name") {
    read_name(v, where, sf, errors);
  } else if (k == "set") {
    read_set(v, where, sf, errors);
  } else if (k == "grid") {
    read_grid(v, where, sf, errors);
  } else if (k == "points") {
    read_points(v, where, sf, errors);
  }
}

// The problems of the file as a whole, once its top-level keys (`top_seen`) are read.
void check_whole_file(const SweepFile& sf, const std::set<std::string>& top_seen, std::vector<std::string>& errors) {
  const std::string& path = sf.path;
  if (!top_seen.count("name") && !valid_name(sf.name)) {  // the default: the file's stem
    errors.push_back(
        fmt::format("{}: the sweep's name defaults to the file's stem '{}', which is not "
                    "a name of letters, digits, '_', '-' and '.'; give name:",
                    path, sf.name));
  }
  if (!top_seen.count("base")) {
    errors.push_back(fmt::format("{}: missing base: (the config file the points override)", path));
  }
  if (!top_seen.count("grid") && !top_seen.count("points")) {
    errors.push_back(
        fmt::format("{}: nothing to sweep: give grid: (lists of values per key) and/or "
                    "points: (a list of override maps)",
                    path));
  }
  for (const SweepAxis& axis : sf.grid) {
    for (const SweepValue& s : sf.set) {
      if (s.key == axis.key) {
        errors.push_back(
            fmt::format("{}: {} is both under set: and grid: ({}); the grid would "
                        "override set: for every point, so remove one",
                        axis.values[0].origin, axis.key, s.origin));
      }
    }
  }
}

}  // namespace

SweepFile read_sweep_file(const std::string& path) {
  const YAML::Node root = load_yaml(path);
  if (!root.IsMap()) {
    throw UserError(
        fmt::format("{}: the sweep file must be a map (base:, grid: and/or points:), got {}", path, node_kind(root)),
        kFormatHint);
  }
  SweepFile sf;
  sf.path = path;
  sf.name = fs::path(path).stem().string();
  std::vector<std::string> errors;
  std::set<std::string> top_seen;
  for (const auto& kv : root) {
    const std::string where = line_of(path, kv.first);
    const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (new_top_key(k, where, top_seen, errors)) read_top_key(k, kv.second, where, sf, errors);
  }
  check_whole_file(sf, top_seen, errors);
  if (!errors.empty()) {
    throw UserError(fmt::format("invalid sweep file {} ({} problem{}):\n  {}", path, errors.size(),
                                errors.size() == 1 ? "" : "s", fmt::join(errors, "\n  ")),
                    kFormatHint);
  }
  return sf;
}

SweepValue parse_cli_override(const std::string& arg) {
  const std::string origin = "--set " + arg;
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UserError(fmt::format("{}: malformed override; expected key.path=value", origin),
                    "e.g. --set data.train=data/synth/synth_train_*.bin");
  }
  const std::string path = arg.substr(0, eq);
  std::vector<std::string> errors;
  const KeySpec* key = sweep_key(path, "--set", origin, errors);
  if (!key) throw UserError(errors.front());
  YAML::Node node;
  try {
    node = YAML::Load(arg.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw UserError(fmt::format("{}: the value is not valid YAML ({})", origin, e.msg),
                    fmt::format("quote it, e.g. --set {}='\"...\"'", path));
  }
  std::string error;
  std::optional<SweepValue> v = make_value(*key, node, origin, error);
  if (!v) throw UserError(fmt::format("{}: {}: {}", origin, path, error));
  return *v;
}

}  // namespace am

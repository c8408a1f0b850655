// Expanding a sweep file into points (ids, override lists) and validating each point's config.
#include "sweep/points.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

namespace am {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxIdLength = 200;  // file names are limited to 255 bytes

// The last `n` dotted parts of `path` ("model.moe.d_ffn", 2 -> "moe.d_ffn"); all of it when
// it has no more than `n` parts.
std::string tail(const std::string& path, int n) {
  size_t pos = path.size();
  for (int i = 0; i < n; ++i) {
    const size_t dot = pos == 0 ? std::string::npos : path.rfind('.', pos - 1);
    if (dot == std::string::npos) return path;
    pos = dot;
  }
  return path.substr(pos + 1);
}

int parts(const std::string& path) { return 1 + static_cast<int>(std::count(path.begin(), path.end(), '.')); }

// key -> label after applying `layers` in order (later wins): what a point effectively sets.
std::map<std::string, std::string> effective(const std::vector<const std::vector<SweepValue>*>& layers) {
  std::map<std::string, std::string> m;
  for (const auto* layer : layers) {
    for (const SweepValue& v : *layer) m[v.key] = v.label;
  }
  return m;
}

std::string strip_hint(const std::string& msg) {
  const size_t h = msg.find("\n  ---> HINT: ");
  return h == std::string::npos ? msg : msg.substr(0, h);
}

std::string indent(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '\n' ? std::string("\n    ") : std::string(1, c);
  return out;
}

}  // namespace

std::vector<std::string> varying_keys(const SweepFile& sf) {
  std::vector<std::string> keys;
  auto add = [&](const std::string& k) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  };
  for (const SweepAxis& a : sf.grid) add(a.key);
  for (const auto& p : sf.points) {
    for (const SweepValue& v : p) add(v.key);
  }
  return keys;
}

std::vector<std::string> short_key_names(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  for (const std::string& k : keys) {
    int n = 1;
    for (; n < parts(k); ++n) {
      const std::string t = tail(k, n);
      const bool shared = std::any_of(keys.begin(), keys.end(), [&](const std::string& o) {
        return o != k && (o == t || (o.size() > t.size() && o.compare(o.size() - t.size(), t.size(), t) == 0 &&
                                     o[o.size() - t.size() - 1] == '.'));
      });
      if (!shared) break;
    }
    out.push_back(tail(k, n));
  }
  return out;
}

std::string point_id(const std::vector<SweepValue>& own, const std::vector<std::string>& keys,
                     const std::vector<std::string>& short_names) {
  std::string id;
  for (const SweepValue& v : own) {
    const auto it = std::find(keys.begin(), keys.end(), v.key);
    AM_CHECK(it != keys.end(), "point key {} is not among the varying keys", v.key);
    if (!id.empty()) id += ',';
    id += short_names[static_cast<size_t>(it - keys.begin())] + "=" + v.label;
  }
  for (char& c : id) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ',' || c == '=' ||
                    c == '+' || c == '-';
    if (!ok) c = '_';
  }
  return id;
}

std::vector<SweepPoint> expand_points(const SweepFile& sf, const std::vector<SweepValue>& cli_sets) {
  const std::vector<std::string> keys = varying_keys(sf);
  const std::vector<std::string> names = short_key_names(keys);
  std::vector<std::string> errors;
  for (const SweepValue& c : cli_sets) {
    if (std::find(keys.begin(), keys.end(), c.key) != keys.end()) {
      errors.push_back(
          fmt::format("{}: {} is varied by the sweep's grid:/points:, so it cannot be "
                      "fixed for every point; edit the sweep file instead",
                      c.origin, c.key));
    }
  }

  // The point's own values: grid combinations (odometer order, last axis fastest), then points.
  std::vector<SweepPoint> points;
  if (!sf.grid.empty()) {
    std::vector<size_t> idx(sf.grid.size(), 0);
    for (bool more = true; more;) {
      SweepPoint p;
      p.origin = "grid";
      for (size_t a = 0; a < sf.grid.size(); ++a) p.own.push_back(sf.grid[a].values[idx[a]]);
      points.push_back(p);
      more = false;
      for (size_t a = sf.grid.size(); a-- > 0;) {
        if (++idx[a] < sf.grid[a].values.size()) {
          more = true;
          break;
        }
        idx[a] = 0;
      }
    }
  }
  for (size_t i = 0; i < sf.points.size(); ++i) {
    SweepPoint p;
    p.origin = i < sf.point_origins.size() ? sf.point_origins[i] : sf.path;
    p.own = sf.points[i];
    points.push_back(p);
  }

  std::map<std::map<std::string, std::string>, size_t> by_values;
  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < points.size(); ++i) {
    SweepPoint& p = points[i];
    p.id = point_id(p.own, keys, names);
    for (const SweepValue& v : sf.set) p.overrides.push_back(v.override_string());
    for (const SweepValue& v : cli_sets) p.overrides.push_back(v.override_string());
    for (const SweepValue& v : p.own) p.overrides.push_back(v.override_string());
    p.overrides.push_back(fmt::format("run.name={}/{}", sf.name, p.id));
    if (p.id.size() > kMaxIdLength) {
      errors.push_back(
          fmt::format("point {} ({}): its id is {} characters long (at most {} make a file "
                      "name)",
                      i + 1, p.origin, p.id.size(), kMaxIdLength));
    }
    const auto values = effective({&sf.set, &cli_sets, &p.own});
    if (auto [it, fresh] = by_values.emplace(values, i); !fresh) {
      errors.push_back(fmt::format("point {} ({}) sets the same values as point {} ({}): {}", i + 1, p.origin,
                                   it->second + 1, points[it->second].origin, p.id));
    } else if (auto [jt, fresh_id] = by_id.emplace(p.id, i); !fresh_id) {
      errors.push_back(
          fmt::format("points {} ({}) and {} ({}) get the same id '{}' (characters outside "
                      "[A-Za-z0-9._,=+-] become '_'); make their values differ in more "
                      "than those characters",
                      jt->second + 1, points[jt->second].origin, i + 1, p.origin, p.id));
    }
  }
  if (!errors.empty()) {
    throw UserError(fmt::format("invalid sweep {} ({} problem{}):\n  {}", sf.path, errors.size(),
                                errors.size() == 1 ? "" : "s", fmt::join(errors, "\n  ")),
                    "docs/sweeps.md explains point ids, duplicates and --set");
  }
  return points;
}

SweepPlan plan_sweep(const std::string& sweep_path, const std::vector<std::string>& cli_sets) {
  SweepPlan plan;
  plan.file = read_sweep_file(sweep_path);
  plan.cli_sets = cli_sets;
  std::vector<SweepValue> cli;
  for (const std::string& s : cli_sets) cli.push_back(parse_cli_override(s));
  plan.varying_keys = varying_keys(plan.file);
  plan.short_names = short_key_names(plan.varying_keys);
  plan.points = expand_points(plan.file, cli);

  // Load every point's config; group identical problems (a broken base breaks every point).
  std::vector<std::pair<std::string, std::vector<std::string>>> problems;  // message -> point ids
  size_t invalid = 0;
  for (const SweepPoint& p : plan.points) {
    try {
      plan.configs.push_back(load_config(plan.file.base, p.overrides));
    } catch (const UserError& e) {
      ++invalid;
      const std::string msg = strip_hint(e.what());
      auto it = std::find_if(problems.begin(), problems.end(), [&](const auto& pr) { return pr.first == msg; });
      if (it == problems.end()) {
        problems.push_back({msg, {p.id}});
      } else {
        it->second.push_back(p.id);
      }
    }
  }
  if (invalid > 0) {
    std::string text;
    for (const auto& [msg, ids] : problems) {
      const std::string who = ids.size() == plan.points.size()
                                  ? "every point"
                                  : fmt::format("point{} {}", ids.size() == 1 ? "" : "s", fmt::join(ids, " | "));
      text += fmt::format("\n  {}: {}", who, indent(msg));
    }
    throw UserError(fmt::format("sweep {}: {} of {} point{} invalid; nothing was run:{}", sweep_path, invalid,
                                plan.points.size(), plan.points.size() == 1 ? " is" : "s are", text),
                    "fix the sweep file or the base config; docs/configs.md lists every key, "
                    "`autonomoe sweep FILE --dry-run` checks again without running");
  }

  // Points that differ in what they set can still resolve to the same config (a value equal to
  // the base's): running both would only repeat work.
  std::vector<std::string> dupes;
  for (size_t i = 0; i < plan.points.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const auto& a = plan.configs[i].resolved;
      const auto& b = plan.configs[j].resolved;
      bool same = a.size() == b.size();
      for (size_t k = 0; same && k < a.size(); ++k) {
        same = a[k].path == "run.name" || a[k].value == b[k].value;
      }
      if (same) {
        dupes.push_back(
            fmt::format("points {} and {} resolve to the same config", plan.points[j].id, plan.points[i].id));
        break;
      }
    }
  }
  if (!dupes.empty()) {
    throw UserError(
        fmt::format("sweep {}: duplicate points; nothing was run:\n  {}", sweep_path, fmt::join(dupes, "\n  ")),
        "a value equal to the base config's (or to set:) makes the same run twice; "
        "remove one of each pair");
  }
  plan.dir = (fs::path(plan.configs.front().run.out_dir) / plan.file.name).string();
  return plan;
}

}  // namespace am

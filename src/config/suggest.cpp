// "Did you mean ...?" for unknown config keys: edit distance over full dotted paths, over the
// names of siblings, and exact name matches anywhere (a key put in the wrong section).
#include "config/suggest.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "config/schema.h"

namespace am {

namespace {

std::string last_name(const std::string& path) { return path.substr(path.rfind('.') + 1); }

std::string parent_of(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

// Every key path and every section path ("model", "model.moe", ...), in schema order.
std::vector<std::string> known_paths() {
  std::vector<std::string> out;
  for (const KeySpec& k : config_schema()) {
    for (size_t dot = k.path.find('.'); dot != std::string::npos; dot = k.path.find('.', dot + 1)) {
      std::string sec = k.path.substr(0, dot);
      if (std::find(out.begin(), out.end(), sec) == out.end()) out.push_back(sec);
    }
    out.push_back(k.path);
  }
  return out;
}

// How many edits still look like a typo of a name this long.
int max_typo_distance(size_t len) { return len <= 3 ? 1 : len <= 8 ? 2 : 3; }

}  // namespace

int edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));  // (n+1, m+1)
  for (size_t i = 0; i <= n; ++i) d[i][0] = int(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = int(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string suggest_key(const std::string& path) {
  const std::string name = last_name(path);
  const std::string parent = parent_of(path);
  const int limit = max_typo_distance(name.size());
  const std::vector<std::string> known = known_paths();
  // The right name in the wrong place: `d_model:` at the top level -> model.d_model.
  for (const std::string& cand : known) {
    if (last_name(cand) == name) return cand;
  }
  // A typo: the full path, or the name among its siblings, a few edits away.
  std::string best;
  int best_d = limit + 1;
  for (const std::string& cand : known) {
    int d = edit_distance(path, cand);
    if (parent_of(cand) == parent) d = std::min(d, edit_distance(name, last_name(cand)));
    if (d < best_d) {
      best_d = d;
      best = cand;
    }
  }
  if (!best.empty()) return best;
  // A typo in the wrong place: model.n_expert -> model.moe.n_experts.
  for (const std::string& cand : known) {
    const int d = edit_distance(name, last_name(cand));
    if (d < best_d) {
      best_d = d;
      best = cand;
    }
  }
  return best;
}

std::string unknown_key_hint(const std::string& path) {
  std::string s = suggest_key(path);
  if (!s.empty()) return fmt::format("did you mean {}?", s);
  std::string parent = parent_of(path);  // the innermost known section that encloses `path`
  while (!parent.empty() && !is_section(parent)) parent = parent_of(parent);
  std::vector<std::string> names;
  for (const std::string& cand : known_paths()) {
    if (parent_of(cand) == parent) names.push_back(last_name(cand));
  }
  return fmt::format("valid keys in {}: {}", parent.empty() ? "the top level" : parent, fmt::join(names, ", "));
}

}  // namespace am

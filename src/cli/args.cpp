#include "cli/args.h"

#include "config/suggest.h"

#include <algorithm>
#include <cmath>

namespace am {
Args::Args(const std::string& program, const std::vector<FlagSpec>& specs, int argc, char** argv) : program_(program) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      throw UsageError(fmt::format("{}: unexpected argument '{}'", program, arg),
                       fmt::format("see `{} --help`", program));
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto spec = std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end()) {
      std::string best;
      int best_d = 4;
      for (const FlagSpec& s : specs) {
        if (int d = edit_distance(name, s.name); d < best_d) best_d = d, best = s.name;
      }
      throw UsageError(
          fmt::format("{}: unknown option --{}", program, name),
          best.empty() ? fmt::format("see `{} --help`", program) : fmt::format("did you mean --{}?", best));
    }
    if (spec->takes_value && !inline_value) {
      const bool next_is_value = i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0;
      if (next_is_value) {
        value = argv[++i];
      } else if (!spec->value_optional) {
        throw UsageError(fmt::format("{}: option --{} needs a value", program, name),
                         fmt::format("--{} <value>: {}", name, spec->help));
      }
    } else if (!spec->takes_value && inline_value) {
      throw UsageError(fmt::format("{}: option --{} takes no value", program, name));
    }
    if (name == "set") {
      sets_.push_back(value);
    } else {
      values_[name] = value;
    }
  }
}

std::optional<std::string> Args::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::require(const std::string& flag) const {
  auto v = get(flag);
  if (!v || v->empty()) {
    throw UsageError(fmt::format("{}: --{} is required", program_, flag), fmt::format("see `{} --help`", program_));
  }
  return *v;
}

int Args::integer(const std::string& flag, int fallback, int min) const {
  const auto v = get(flag);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const long x = std::stol(*v, &used);
    if (used == v->size() && x >= min && x < (1L << 30)) return static_cast<int>(x);
  } catch (const std::exception&) {}
  throw UsageError(fmt::format("{}: --{} {}: expected an integer of at least {}", program_, flag, *v, min));
}

double Args::number(const std::string& flag, double fallback) const {
  const auto v = get(flag);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const double x = std::stod(*v, &used);
    if (used == v->size() && std::isfinite(x)) return x;
  } catch (const std::exception&) {}
  throw UsageError(fmt::format("{}: --{} {}: expected a number", program_, flag, *v));
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                        "_-.,/=:+@%") == std::string::npos) {
    return s;
  }
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string usage_of(const std::string& program, const std::string& synopsis, const std::vector<FlagSpec>& specs) {
  std::string s = fmt::format("usage: {} {}\n\noptions:\n", program, synopsis);
  for (const FlagSpec& f : specs) {
    std::string left = "--" + f.name + (f.takes_value ? (f.value_optional ? " [VALUE]" : " VALUE") : "");
    s += fmt::format("  {:<24} {}\n", left, f.help);
  }
  return s;
}

}  // namespace am

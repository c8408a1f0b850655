#include "cli/args.h"

#include "config/suggest.h"

#include <algorithm>

namespace am {
Args::Args(const std::string& command, const std::vector<FlagSpec>& specs, int argc, char** argv)
    : command_(command) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      throw UsageError(fmt::format("autonomoe {}: unexpected argument '{}'", command, arg),
                      fmt::format("see `autonomoe {} --help`", command));
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
      throw UsageError(fmt::format("autonomoe {}: unknown option --{}", command, name),
                      best.empty() ? fmt::format("see `autonomoe {} --help`", command)
                                   : fmt::format("did you mean --{}?", best));
    }
    if (spec->takes_value && !inline_value) {
      const bool next_is_value = i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0;
      if (next_is_value) {
        value = argv[++i];
      } else if (!spec->value_optional) {
        throw UsageError(fmt::format("autonomoe {}: option --{} needs a value", command, name),
                        fmt::format("--{} <value>: {}", name, spec->help));
      }
    } else if (!spec->takes_value && inline_value) {
      throw UsageError(fmt::format("autonomoe {}: option --{} takes no value", command, name));
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
    throw UsageError(fmt::format("autonomoe {}: --{} is required", command_, flag),
                    fmt::format("see `autonomoe {} --help`", command_));
  }
  return *v;
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

std::string usage_of(const std::string& command, const std::string& synopsis,
                     const std::vector<FlagSpec>& specs) {
  std::string s = fmt::format("usage: autonomoe {} {}\n\noptions:\n", command, synopsis);
  for (const FlagSpec& f : specs) {
    std::string left = "--" + f.name + (f.takes_value ? (f.value_optional ? " [VALUE]" : " VALUE") : "");
    s += fmt::format("  {:<24} {}\n", left, f.help);
  }
  return s;
}

}  // namespace am

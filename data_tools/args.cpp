#include "args.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

namespace am::data_tools {

Args::Args(std::vector<OptionSpec> specs, int argc, char** argv, int first) : specs_(std::move(specs)) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      return;
    }
    if (a.rfind("--", 0) != 0) throw UsageError(fmt::format("unexpected argument \"{}\"", a));
    std::string name = a.substr(2), inline_value;
    const bool has_inline = name.find('=') != std::string::npos;
    if (has_inline) {
      inline_value = name.substr(name.find('=') + 1);
      name = name.substr(0, name.find('='));
    }
    const OptionSpec* s = find(name);
    if (!s) throw UsageError(fmt::format("unknown option --{}", name));
    auto& v = values_[name];
    if (s->flag) {
      if (has_inline) throw UsageError(fmt::format("--{} takes no value", name));
      v.push_back("1");
      continue;
    }
    if (!s->multi) v.clear();  // the last occurrence wins
    if (has_inline) {
      v.push_back(inline_value);
      continue;
    }
    const int before = static_cast<int>(v.size());
    while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      v.push_back(argv[++i]);
      if (!s->multi) break;
    }
    if (static_cast<int>(v.size()) == before) throw UsageError(fmt::format("--{} needs a value", name));
  }
  for (const auto& s : specs_) {
    if (s.required && !has(s.name)) throw UsageError(fmt::format("--{} is required", s.name));
  }
}

const OptionSpec* Args::find(const std::string& name) const {
  for (const auto& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string Args::str(const std::string& name) const {
  const auto it = values_.find(name);
  if (it != values_.end() && !it->second.empty()) return it->second.back();
  const OptionSpec* s = find(name);
  return s ? s->default_value : "";
}

std::vector<std::string> Args::list(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

long long Args::integer(const std::string& name) const {
  const std::string v = str(name);
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0) {
    throw UsageError(fmt::format("--{}: expected an integer, got \"{}\"", name, v));
  }
  return x;
}

double Args::number(const std::string& name) const {
  const std::string v = str(name);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw UsageError(fmt::format("--{}: expected a number, got \"{}\"", name, v));
  return x;
}

std::string Args::usage() const { return format_usage(specs_); }

std::string format_usage(const std::vector<OptionSpec>& specs) {
  std::string out = "Options:\n";
  for (const auto& s : specs) {
    std::string lhs = "--" + s.name;
    if (!s.flag) lhs += s.multi ? " VALUE..." : " VALUE";
    std::string rhs = s.help;
    if (s.required) rhs += " (required)";
    if (!s.default_value.empty()) rhs += fmt::format(" [default: {}]", s.default_value);
    out += fmt::format("  {:<26} {}\n", lhs, rhs);
  }
  out += fmt::format("  {:<26} {}\n", "--help", "show this help");
  return out;
}

}  // namespace am::data_tools

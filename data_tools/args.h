// A small command-line parser for autonomoe-data's subcommands: `--key value`, `--key=value`,
// flags, and options that take several values (`--input a.jsonl b.jsonl`). Bad arguments throw
// UsageError, which main() reports with the subcommand's usage and exit code 2.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace am::data_tools {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string name;  // without the leading "--"
  std::string help;
  bool required = false;
  bool multi = false;  // takes one or more values
  bool flag = false;   // takes no value
  std::string default_value;
};

// Spec builders: a required option, a required multi-value option, an optional one with a
// default, and a flag.
inline OptionSpec required(std::string name, std::string help) {
  return {std::move(name), std::move(help), true, false, false, ""};
}
inline OptionSpec required_list(std::string name, std::string help) {
  return {std::move(name), std::move(help), true, true, false, ""};
}
inline OptionSpec optional(std::string name, std::string help, std::string default_value) {
  return {std::move(name), std::move(help), false, false, false, std::move(default_value)};
}
inline OptionSpec flag(std::string name, std::string help) {
  return {std::move(name), std::move(help), false, false, true, ""};
}

// "Options:\n  --input VALUE...   ..." from the specs.
std::string format_usage(const std::vector<OptionSpec>& specs);

class Args {
 public:
  // Parses argv[first..argc). Throws UsageError for unknown options, missing values or missing
  // required options. help() is true when --help/-h was given (nothing else is checked then).
  Args(std::vector<OptionSpec> specs, int argc, char** argv, int first);

  bool help() const { return help_; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string str(const std::string& name) const;
  std::vector<std::string> list(const std::string& name) const;
  long long integer(const std::string& name) const;
  double number(const std::string& name) const;
  bool flag(const std::string& name) const { return has(name); }

  std::string usage() const;

 private:
  std::vector<OptionSpec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  bool help_ = false;
  const OptionSpec* find(const std::string& name) const;
};

}  // namespace am::data_tools

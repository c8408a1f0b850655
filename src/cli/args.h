// A small command-line parser for the subcommands: `--flag value`, `--flag=value`, boolean
// `--flag`, repeatable `--set key=value`. Unknown flags are errors that suggest the closest one.
#pragma once

#include "core/error.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace am {

// A malformed command line (the CLI exits 2 on these, 1 on other UserErrors).
class UsageError : public UserError {
 public:
  using UserError::UserError;
};

struct FlagSpec {
  std::string name;             // without dashes
  bool takes_value;             // false: a boolean switch
  bool value_optional = false;  // `--resume` alone or `--resume DIR`
  std::string help;
};

class Args {
 public:
  // program: how messages name the command ("autonomoe train", "autonomoe-bench"). Throws
  // UsageError on unknown flags or missing values (the message names the flag).
  Args(const std::string& program, const std::vector<FlagSpec>& specs, int argc, char** argv);
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::optional<std::string> get(const std::string& flag) const;
  std::string require(const std::string& flag) const;  // UserError if missing
  // The flag's value as an integer >= min (fallback when absent); UsageError otherwise.
  int integer(const std::string& flag, int fallback, int min) const;
  double number(const std::string& flag, double fallback) const;  // any finite number
  const std::vector<std::string>& sets() const { return sets_; }  // the --set values, in order

 private:
  std::string program_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> sets_;
};

// A shell word that pastes back as itself: single-quoted when it holds anything special.
std::string shell_quote(const std::string& s);

// "usage: PROGRAM SYNOPSIS" and a line per flag.
std::string usage_of(const std::string& program, const std::string& synopsis, const std::vector<FlagSpec>& specs);

}  // namespace am

// Where config values come from: YAML files (following `extends:` chains) and --set overrides,
// merged into one flat list of entries, each remembering the file and line that set it.
#pragma once

#include <string>
#include <vector>

namespace am {

// One value of the merged config. `path` is a schema key, or a section / unknown name whose
// value was not a map of known keys (the validator reports those). The value is copied out of
// the YAML::Node: yaml-cpp nodes have reference semantics on assignment, so they must not live in
// containers that move their elements.
struct ConfigEntry {
  enum class Kind { Scalar, Null, Map, Sequence };
  std::string path;     // "model.d_model"
  Kind kind;            // what was written
  std::string text;     // the scalar text (Kind::Scalar only)
  bool quoted = false;  // a quoted scalar ("64"): a string, never a number or a bool
  std::string source;   // "configs/tiny.yaml:12" or "--set" (what Config::resolved records)
  std::string origin;   // for messages: "configs/tiny.yaml:12" or "--set model.d_model=64"
  // Kind::Sequence only: the elements in order, each an entry of its own (path empty, its own
  // source / origin line), nested sequences included. Schedules ([[step, value], ...]) read them.
  std::vector<ConfigEntry> items;

  // "'64'", "the quoted string \"64\"", "a map", "a sequence", "an empty value"
  std::string describe() const;
};

// Reads `path` and every file it extends. Files deep-merge: the file that names `extends:`
// wins, and a value of another kind (map vs scalar) replaces the inherited one. Structural
// problems (missing file, YAML syntax, extends cycle, top level not a map) throw UserError;
// problems that do not stop reading (duplicate keys) are appended to `errors`.
std::vector<ConfigEntry> read_config_file(const std::string& path, std::vector<std::string>& errors);

// Applies "key.path=value" overrides in order (the value parsed as YAML, so `k=[1, 2]` and
// `model.moe={k: 1}` work). Malformed overrides and unknown keys are appended to `errors`.
void apply_overrides(std::vector<ConfigEntry>& entries, const std::vector<std::string>& overrides,
                     std::vector<std::string>& errors);

}  // namespace am

// A sweep file: a base config and the overrides that define the sweep's points.
//
//   base: ../tiny.yaml        # the config every point overrides (relative to this file)
//   name: dlow                # runs go to <run.out_dir>/<name>/<point id>; default: file stem
//   set:                      # overrides applied to every point (optional)
//     train.max_steps: 100
//   grid:                     # cartesian product, first key outermost (optional)
//     model.moe.aux.load_balance: [0, 0.01]
//     train.lr: [1.0e-3, 3.0e-3]
//   points:                   # explicit override sets, after the grid points (optional)
//     - {train.lr: 1.0e-2, data.seq_len: 64}
//
// Keys may be dotted (`train.lr`) or nested (`train: {lr: ...}`); either way each leaf must be a
// config key (config/schema.cpp) with a scalar value that key accepts. read_sweep_file() checks
// all of that and reports every problem, with the sweep file's line, in one UserError.
#pragma once

#include <string>
#include <vector>

namespace am {

// One override of a config key, as written in the sweep file (or on the command line).
struct SweepValue {
  std::string key;     // "train.lr"
  std::string text;    // YAML text for a "key=text" override ("0.003", "\"64\"", "" for null)
  std::string label;   // the value as a point id shows it: "0.003", "64", "null"
  std::string origin;  // "configs/sweeps/x.yaml:7", or "--set train.lr=0.003"

  std::string override_string() const { return key + "=" + text; }
};

struct SweepAxis {
  std::string key;
  std::vector<SweepValue> values;  // non-empty
};

struct SweepFile {
  std::string path;  // the sweep file as given
  std::string base;  // the base config: relative to the sweep file's directory, resolved
  std::string name;  // the sweep name: [A-Za-z0-9._-], not starting with '.'
  std::vector<SweepValue> set;
  std::vector<SweepAxis> grid;                  // in the order written
  std::vector<std::vector<SweepValue>> points;  // each non-empty, in the order written
  std::vector<std::string> point_origins;       // "<file>:<line>" of each explicit point
};

// Reads and checks a sweep file. Throws UserError naming the file, line, key and what is valid.
SweepFile read_sweep_file(const std::string& path);

// A "key=value" command-line override as a SweepValue (value parsed as YAML, checked against the
// key like a sweep file's values). Throws UserError naming the --set argument.
SweepValue parse_cli_override(const std::string& arg);

}  // namespace am

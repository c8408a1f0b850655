// The points of a sweep: the grid's cartesian product, then the explicit points, each with a
// stable, readable id and the full list of overrides that turns the base config into its config.
//
// A point's overrides, in the order load_config applies them (later wins): the sweep's set:, the
// command line's --set, the point's own values (its grid values or its points: entry), and
// run.name=<sweep name>/<id>. Its run directory is therefore <run.out_dir>/<sweep name>/<id>.
#pragma once

#include "config/config.h"
#include "sweep/sweep_file.h"

#include <string>
#include <vector>

namespace am {

struct SweepPoint {
  std::string id;                      // "load_balance=0.01,lr=0.003"
  std::vector<SweepValue> own;         // the values that make this point, in id order
  std::vector<std::string> overrides;  // "key=value" for load_config (see above)
  std::string origin;                  // "grid" or "<sweep file>:<line>" of its points: entry
};

// Every key some point sets: grid keys in order, then new keys of the explicit points in order
// of first appearance. These are the varying columns of the results table.
std::vector<std::string> varying_keys(const SweepFile& sf);

// The name each key has in ids and tables: the shortest trailing part of its dotted path that no
// other key in `keys` ends with ("model.moe.d_ffn" -> "d_ffn"; "eval.every" and "log.every"
// keep both parts when both vary).
std::vector<std::string> short_key_names(const std::vector<std::string>& keys);

// "name=value,name=value" from the point's own values, in that order, with every character
// outside [A-Za-z0-9._,=+-] replaced by '_' so that it is a plain file name.
std::string point_id(const std::vector<SweepValue>& own, const std::vector<std::string>& keys,
                     const std::vector<std::string>& short_names);

// The points in order: grid (first key outermost, last key fastest), then points:. Throws
// UserError when a --set names a key the sweep varies, when two points set the same values
// (duplicates) or when two different points get the same id (a collision after sanitising).
std::vector<SweepPoint> expand_points(const SweepFile& sf, const std::vector<SweepValue>& cli_sets);

struct SweepPlan {
  SweepFile file;
  std::vector<std::string> cli_sets;      // as given on the command line
  std::vector<std::string> varying_keys;  // table columns
  std::vector<std::string> short_names;   // their names in ids and in results.md
  std::vector<SweepPoint> points;
  std::vector<Config> configs;  // each point's resolved config (same order)
  std::string dir;              // <run.out_dir>/<sweep name>: results.csv / results.md
};

// Reads the sweep file, expands its points and loads every point's config. Every invalid point
// is reported in one UserError (nothing should run then), as are points whose resolved configs
// are identical.
SweepPlan plan_sweep(const std::string& sweep_path, const std::vector<std::string>& cli_sets);

}  // namespace am

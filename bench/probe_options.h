// The command line of the benchmark probes (autonomoe-gemm-probe, autonomoe-comm-bench):
//   PROGRAM --config FILE [--set key=value]... [--repeats N] [--json FILE] [--help]
#pragma once

#include "cli/args.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace am::bench {

struct ProbeOptions {
  std::string config, json;
  std::vector<std::string> sets;
  int repeats = 0;
};

// Parses argv[1..argc); --help prints the usage and exits 0; bad arguments throw UsageError.
inline ProbeOptions parse_probe_options(const std::string& program, int default_repeats, int argc, char** argv) {
  const std::vector<FlagSpec> flags = {
      {"config", true, false, "config file (required)"},
      {"set", true, false, "key=value override (repeatable)"},
      {"repeats", true, false, "timed rounds, median reported (default " + std::to_string(default_repeats) + ")"},
      {"json", true, false, "also write the results here"},
      {"help", false, false, "this help"},
  };
  const Args args(program, flags, argc - 1, argv + 1);
  if (args.has("help")) {
    std::fputs(usage_of(program, "--config FILE [--set key=value]... [--repeats N] [--json FILE]", flags).c_str(),
               stdout);
    std::exit(0);
  }
  ProbeOptions o;
  o.config = args.require("config");
  o.sets = args.sets();
  o.repeats = args.integer("repeats", default_repeats, 1);
  o.json = args.get("json").value_or("");
  return o;
}

}  // namespace am::bench

// The facts every rank of a multi-process run must agree on (dist/rank_agreement.h): the resolved
// config, the backend and communication each rank ended up with, the checkpoint it resumes, and
// its data files.
#pragma once

#include "config/config.h"
#include "data/loader.h"
#include "dist/rank_agreement.h"

#include <optional>
#include <string>
#include <vector>

namespace am {

// Every resolved config key, in schema order (no exceptions: docs/distributed.md says why), then
// "backend", "communication", "resume from", and the files of data.train and data.val (val null
// without data.val).
std::vector<RunFact> run_facts(const Config& cfg, const std::string& backend, const std::string& comm,
                               const std::optional<std::string>& resume_dir, const DataLoader& train,
                               const DataLoader* val);

// A data file as a fact: "<path>: <bytes> bytes, sampled xxh3 <hex>" with the hash of its first
// and last 4 KiB (not the whole file: that would read terabytes at every start-up).
std::string data_file_fact(const std::string& path);

}  // namespace am

// Test support: a copy of a checkpoint with one NaN weight (or AdamW moment) and a manifest that matches it (written
// through CheckpointWriter, like a real one), so that only the check for non-finite values can
// refuse it. Used by tests/test_numerics.cpp and by the am-poison-checkpoint tool of the CLI tests.
#pragma once

#include "core/bf16.h"
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace am::test {

// Sets element 0 of `bytes` (one tensor of dtype dt) to NaN.
inline void set_first_nan(std::vector<char>& bytes, DType dt) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const float nanf = std::numeric_limits<float>::quiet_NaN();
  const uint16_t nanb = f32_to_bf16_bits(nanf);
  if (dt == DType::F64) std::memcpy(bytes.data(), &nan, sizeof nan);
  if (dt == DType::F32) std::memcpy(bytes.data(), &nanf, sizeof nanf);
  if (dt == DType::BF16) std::memcpy(bytes.data(), &nanb, sizeof nanb);
}

// Writes the safetensors file `src` into `dst` with element 0 of tensor `name` set to NaN.
inline void copy_with_nan(const std::string& src, const std::string& dst, const std::string& name) {
  SafetensorsFile in(src);
  in.info(name);  // UserError if absent
  std::vector<std::vector<char>> data;
  std::vector<StEntry> entries;
  for (const std::string& n : in.names()) {
    const StInfo& info = in.info(n);
    data.emplace_back(info.bytes);
    std::memcpy(data.back().data(), in.data(n), info.bytes);
    if (n == name) set_first_nan(data.back(), info.dtype);
  }
  for (size_t i = 0; i < in.names().size(); ++i) {
    const std::string& n = in.names()[i];
    entries.push_back(StEntry{n, in.info(n).dtype, in.info(n).shape, data[i].data()});
  }
  write_safetensors(dst, entries, in.metadata());
}

// Copies checkpoint directory `src` to <dst_root>/step_<N> (its step), with element 0 of tensor
// `name` of `file` (model.safetensors, or optimizer.safetensors for a moment such as
// "<weight>.exp_avg") set to NaN, and commits it with a fresh manifest. Returns its path.
inline std::string poison_checkpoint(const std::string& src, const std::string& dst_root, const std::string& name,
                                     const std::string& file = "model.safetensors") {
  namespace fs = std::filesystem;
  const nlohmann::json manifest = nlohmann::json::parse(read_file((fs::path(src) / "manifest.json").string()));
  CheckpointWriter w(dst_root, manifest.at("step").get<int64_t>());
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    const std::string rel = fs::relative(e.path(), src).string();
    if (!e.is_regular_file() || rel == "manifest.json") continue;
    if (rel == file) {
      copy_with_nan(e.path().string(), w.path(rel), name);
    } else {
      fs::copy_file(e.path(), w.path(rel));
    }
  }
  nlohmann::json extra = nlohmann::json::object();
  if (manifest.contains("tokens")) extra["tokens"] = manifest["tokens"];
  return w.commit(extra);
}

}  // namespace am::test

#include "train/tensorboard.h"

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/output_dir.h"
#include "io/proto_wire.h"
#include "io/regular_file.h"
#include "io/tfrecord.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <system_error>

namespace am {
namespace fs = std::filesystem;
namespace {

constexpr const char* kPrefix = "events.out.tfevents.";

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// tensorflow/core/util/event.proto: Event{1 wall_time double, 2 step int64, 3 file_version string,
// 5 summary Summary}; summary.proto: Summary{1 repeated Value}, Value{1 tag string, 2 simple_value float}.
std::string version_event() {
  ProtoWriter e;
  e.double_field(1, wall_time());
  e.bytes_field(3, "brain.Event:2");
  return e.bytes();
}

std::string scalars_event(int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  ProtoWriter summary;
  for (const auto& [tag, value] : scalars) {
    ProtoWriter v;
    v.bytes_field(1, tag);
    v.float_field(2, static_cast<float>(value));
    summary.bytes_field(1, v.bytes());
  }
  ProtoWriter e;
  e.double_field(1, wall_time());
  e.varint_field(2, static_cast<uint64_t>(step));
  e.bytes_field(5, summary.bytes());
  return e.bytes();
}

void flatten(const nlohmann::json& v, const std::string& tag, std::vector<std::pair<std::string, double>>& out) {
  if (v.is_number()) {
    out.emplace_back(tag, v.get<double>());
  } else if (v.is_object()) {
    for (const auto& [k, x] : v.items()) flatten(x, tag + "/" + k, out);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i].is_object()) flatten(v[i], fmt::format("{}/{}", tag, i), out);
    }
  }
}

// The event files of `dir`, each cut back to its records at steps <= resume_step (rewritten
// atomically when that drops anything); a fresh run (resume_step < 0) removes them.
void trim_event_files(const std::string& dir, int64_t resume_step) {
  std::vector<std::string> files;  // listed first: the loop below removes and replaces files
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind(kPrefix, 0) == 0 && entry.is_regular_file()) {
      files.push_back(entry.path().string());
    }
  }
  for (const std::string& path : files) {
    if (resume_step < 0) {
      fs::remove(path);
      continue;
    }
    const std::string bytes = read_regular_file(path, "TensorBoard event file");
    const TfRecords recs = read_tfrecords(bytes);
    std::string kept;
    bool dropped = recs.valid_bytes != bytes.size();
    for (const std::string& r : recs.records) {
      if (static_cast<int64_t>(find_varint_field(r, 2).value_or(0)) > resume_step) {
        dropped = true;
        break;  // written in step order: the rest is later still
      }
      kept += tfrecord_frame(r);
    }
    if (dropped) write_file_atomic(path, kept);
  }
}

std::string host_name() {
  char h[256] = {};
  if (gethostname(h, sizeof h - 1) != 0 || h[0] == '\0') return "localhost";
  return h;
}

}  // namespace

std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& record) {
  std::vector<std::pair<std::string, double>> out;
  const auto type = record.find("type"), step = record.find("step");
  if (type == record.end() || !type->is_string() || step == record.end() || !step->is_number_integer()) return out;
  const std::string t = type->get<std::string>();
  for (const auto& [k, v] : record.items()) {
    if (k == "type" || k == "step") continue;
    if (v.is_number()) {
      out.emplace_back(t + "/" + (k.rfind(t + "_", 0) == 0 ? k.substr(t.size() + 1) : k), v.get<double>());
    } else {
      flatten(v, t + "." + k, out);
    }
  }
  return out;
}

TensorBoardLog::TensorBoardLog(const std::string& dir, int64_t resume_step) {
  check_output_dir(dir, "the TensorBoard folder (run directory/tensorboard)");  // names what is in the way
  create_output_dir(dir, "the TensorBoard folder (run directory/tensorboard)");
  try {
    trim_event_files(dir, resume_step);
  } catch (const fs::filesystem_error& e) {
    throw UserError(fmt::format("cannot prepare the TensorBoard folder '{}': {}", dir, e.what()));
  }
  const std::string stem = fmt::format("{}{}.{}.{}", kPrefix, static_cast<int64_t>(wall_time()), host_name(), getpid());
  for (int n = 0; path_.empty() || fs::exists(path_); ++n)
    path_ = (fs::path(dir) / fmt::format("{}.{}", stem, n)).string();
  errno = 0;
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) {
    throw UserError(fmt::format("cannot write '{}': {}", path_, std::generic_category().message(errno ? errno : EIO)));
  }
  append(version_event());
}

void TensorBoardLog::write(const nlohmann::json& record) {
  const auto scalars = tensorboard_scalars(record);
  if (!scalars.empty()) append(scalars_event(record.at("step").get<int64_t>(), scalars));
}

void TensorBoardLog::append(const std::string& event) {
  errno = 0;
  out_ << tfrecord_frame(event);
  out_.flush();
  if (!out_) {
    throw UserError(fmt::format("cannot write '{}': {}", path_, std::generic_category().message(errno ? errno : EIO)));
  }
}

}  // namespace am

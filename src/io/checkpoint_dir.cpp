#include "io/checkpoint_dir.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checksum.h"
#include "io/regular_file.h"

namespace am {
namespace fs = std::filesystem;

namespace {

constexpr const char* kManifest = "manifest.json";

std::string utc_now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::optional<int64_t> parse_step_dir(const std::string& name) {
  if (name.size() < 6 || name.size() > 5 + 18 || name.rfind("step_", 0) != 0) return {};
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return {};
    step = step * 10 + (name[i] - '0');
  }
  if (name != checkpoint_dir_name(step)) return {};
  return step;
}

namespace {

void rename_or_fail(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) fail("cannot rename '{}' to '{}': {}", from.string(), to.string(), ec.message());
}

void remove_all_or_fail(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) fail("cannot remove '{}': {}", p.string(), ec.message());
}

// A relative path that stays inside the checkpoint dir, or empty if `name` is not one.
fs::path safe_relative(const std::string& name) {
  fs::path p = fs::path(name).lexically_normal();
  if (name.empty() || p.is_absolute() || p.empty() || *p.begin() == ".." || p == ".") return {};
  return p;
}

std::string older_checkpoint_hint(const fs::path& dir) {
  fs::path d = dir.lexically_normal();
  if (d.filename().empty()) d = d.parent_path();
  fs::path root = d.parent_path().empty() ? fs::path(".") : d.parent_path();
  std::optional<CheckpointEntry> best;
  for (const CheckpointEntry& e : list_checkpoints(root.string())) {
    if (fs::path(e.path).filename() != d.filename()) best = e;
  }
  if (!best) {
    return fmt::format("no other checkpoint in '{}'; restore one from a backup or start over", root.string());
  }
  std::optional<int64_t> this_step = parse_step_dir(d.filename().string());
  bool older = !this_step || best->step < *this_step;
  return fmt::format("use {} checkpoint: the newest other one is '{}' (step {})", older ? "an older" : "another",
                     best->path, best->step);
}

[[noreturn]] void verify_fail(const fs::path& dir, const std::string& what) {
  throw UserError(fmt::format("checkpoint '{}' {}", dir.string(), what), older_checkpoint_hint(dir));
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) { return fmt::format("step_{:08d}", step); }

// ---------------------------------------------------------------- writer

CheckpointWriter::CheckpointWriter(const std::string& root, int64_t step) : root_(root), step_(step) {
  if (step < 0) fail("checkpoint step must be >= 0, got {}", step);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail("cannot create checkpoint root '{}': {}", root, ec.message());
  tmp_ = (fs::path(root) / fmt::format(".{}.tmp-{}", checkpoint_dir_name(step), ::getpid())).string();
  remove_all_or_fail(tmp_);
  fs::create_directory(tmp_, ec);
  if (ec) fail("cannot create checkpoint temp dir '{}': {}", tmp_, ec.message());
}

CheckpointWriter::~CheckpointWriter() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  if (ec) spdlog::warn("could not remove uncommitted checkpoint dir '{}': {}", tmp_, ec.message());
}

std::string CheckpointWriter::path(const std::string& file) const {
  AM_CHECK(!committed_, "CheckpointWriter::path('{}') after commit", file);
  fs::path rel = safe_relative(file);
  AM_CHECK(!rel.empty() && rel != kManifest, "invalid checkpoint file name '{}'", file);
  fs::path full = fs::path(tmp_) / rel;
  std::error_code ec;
  fs::create_directories(full.parent_path(), ec);
  if (ec) fail("cannot create '{}': {}", full.parent_path().string(), ec.message());
  return full.string();
}

std::string CheckpointWriter::commit(const nlohmann::json& extra) {
  AM_CHECK(!committed_, "checkpoint step {} committed twice", step_);
  AM_CHECK(extra.is_null() || extra.is_object(), "manifest extra must be an object");
  nlohmann::ordered_json manifest = {
      {"format", kCheckpointFormat}, {"version", kCheckpointVersion}, {"step", step_}, {"created", utc_now_iso8601()}};
  nlohmann::json files = nlohmann::json::object();  // sorted by name
  std::vector<fs::path> dirs{tmp_};
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(tmp_, ec); !ec && it != fs::end(it); it.increment(ec)) {
    const fs::path& p = it->path();
    std::string rel = p.lexically_relative(tmp_).generic_string();
    if (it->is_symlink()) {
      fail("checkpoint temp dir '{}': '{}' is a symlink; write real files", tmp_, rel);
    } else if (it->is_directory()) {
      dirs.push_back(p);
    } else if (it->is_regular_file()) {
      if (rel == kManifest) continue;
      fsync_file(p.string());
      files[rel] = {{"bytes", fs::file_size(p)}, {"xxh3", xxh3_file(p.string())}};
    } else {
      fail("checkpoint temp dir '{}': '{}' is not a regular file", tmp_, rel);
    }
  }
  if (ec) fail("cannot list checkpoint temp dir '{}': {}", tmp_, ec.message());
  manifest["files"] = files;
  if (extra.is_object()) {
    for (const auto& [k, v] : extra.items()) {
      AM_CHECK(!manifest.contains(k), "manifest extra uses the reserved key '{}'", k);
      manifest[k] = v;
    }
  }
  write_file_atomic((fs::path(tmp_) / kManifest).string(), manifest.dump(2) + "\n");
  for (const fs::path& d : dirs) fsync_dir(d.string());

  fs::path final_dir = fs::path(root_) / checkpoint_dir_name(step_);
  fs::path aside;
  if (fs::exists(final_dir)) {
    aside = fs::path(root_) / fmt::format(".{}.old-{}", checkpoint_dir_name(step_), ::getpid());
    remove_all_or_fail(aside);
    rename_or_fail(final_dir, aside);
  }
  rename_or_fail(tmp_, final_dir);
  committed_ = true;
  fsync_dir(root_);
  if (!aside.empty()) remove_all_or_fail(aside);
  spdlog::info("checkpoint step {} written to {} ({} files)", step_, final_dir.string(), files.size());
  return final_dir.string();
}

// ---------------------------------------------------------------- verification

namespace {

nlohmann::json read_manifest(const fs::path& dir) {
  const fs::path mpath = dir / kManifest;
  std::error_code ec;
  if (!fs::exists(mpath, ec)) verify_fail(dir, "is incomplete: it has no manifest.json (the write was interrupted)");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_regular_file(mpath.string(), "checkpoint manifest"));
  } catch (const nlohmann::json::exception& e) {
    verify_fail(dir, fmt::format("is corrupt: manifest.json is not valid JSON: {}", e.what()));
  } catch (const UserError& e) {
    verify_fail(dir, fmt::format("is corrupt: {}", e.what()));
  }
  if (!m.is_object() || m.value("format", "") != kCheckpointFormat) {
    verify_fail(dir, fmt::format("is corrupt: manifest.json is not an {} manifest", kCheckpointFormat));
  }
  if (!m.contains("version") || m["version"] != kCheckpointVersion) {
    verify_fail(dir, fmt::format("has manifest version {}, this build reads version {}",
                                 m.value("version", nlohmann::json()).dump(), kCheckpointVersion));
  }
  if (!m.contains("files") || !m["files"].is_object()) {
    verify_fail(dir, "is corrupt: manifest.json has no \"files\" object");
  }
  const nlohmann::json& step = m.contains("step") ? m["step"] : nlohmann::json();
  if (!step.is_number_integer() || (step.is_number_unsigned() && step.get<uint64_t>() > INT64_MAX) ||
      step.get<int64_t>() < 0) {
    verify_fail(dir, fmt::format("is corrupt: manifest.json: step: expected an integer >= 0, got {}", step.dump()));
  }
  const std::optional<int64_t> named = parse_step_dir(dir.lexically_normal().filename().string());
  if (named && *named != step.get<int64_t>()) {
    verify_fail(dir, fmt::format("is corrupt: manifest.json says step {}, but the directory is named {} (a "
                                 "checkpoint copied or renamed to another step)",
                                 step.get<int64_t>(), dir.lexically_normal().filename().string()));
  }
  return m;
}

// One manifest entry: the file exists, is a regular file, and has the listed size (and hash).
void verify_entry(const fs::path& dir, const std::string& name, const nlohmann::json& entry, bool hash) {
  fs::path rel = safe_relative(name);
  if (rel.empty() || !entry.is_object() || !entry.contains("bytes") || !entry["bytes"].is_number_unsigned() ||
      !entry.contains("xxh3") || !entry["xxh3"].is_string()) {
    verify_fail(dir, fmt::format("is corrupt: manifest.json: files: '{}': expected a relative path "
                                 "inside the checkpoint with {{\"bytes\": <size>, \"xxh3\": "
                                 "\"<16 hex digits>\"}}, got {}",
                                 name, entry.dump()));
  }
  const fs::path p = dir / rel;
  std::error_code ec;
  if (!fs::exists(p, ec)) {
    verify_fail(dir, fmt::format("is incomplete: file '{}' listed in the manifest is missing", name));
  }
  int64_t size = 0;
  try {
    size = open_regular_file(p.string(), "checkpoint file").size();
  } catch (const UserError& e) {
    verify_fail(dir, fmt::format("is corrupt: {}", e.what()));
  }
  const uint64_t want = entry["bytes"].get<uint64_t>(), have = static_cast<uint64_t>(size);
  if (have != want) {
    verify_fail(dir, fmt::format("is {}: file '{}' has {} bytes, the manifest says {}",
                                 have < want ? "truncated" : "corrupt", name, have, want));
  }
  if (!hash) return;
  const std::string have_hash = xxh3_file(p.string());
  if (have_hash != entry["xxh3"].get<std::string>()) {
    verify_fail(dir, fmt::format("is corrupt: file '{}' has xxh3 {}, the manifest says {}", name, have_hash,
                                 entry["xxh3"].get<std::string>()));
  }
}

}  // namespace

nlohmann::json verify_checkpoint(const std::string& dir_str, const std::vector<std::string>& required,
                                 const std::vector<std::string>& hash_only) {
  fs::path dir(dir_str);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw UserError(fmt::format("checkpoint '{}' does not exist or is not a directory", dir_str),
                    older_checkpoint_hint(dir));
  }
  const nlohmann::json m = read_manifest(dir);
  for (const std::string& name : required) {
    if (!m["files"].contains(name)) {
      verify_fail(dir, fmt::format("is incomplete or corrupt: its manifest.json does not list "
                                   "'{}' (every file the loader reads must be listed with its "
                                   "checksum)",
                                   name));
    }
  }
  for (const auto& [name, entry] : m["files"].items()) {
    const bool hash = hash_only.empty() || std::find(hash_only.begin(), hash_only.end(), name) != hash_only.end();
    verify_entry(dir, name, entry, hash);
  }
  return m;
}

// ---------------------------------------------------------------- listing and cleanup

namespace {

// Why step_<N> at `p` is not the checkpoint of step N, or nullopt when it is (as far as its
// manifest's step says; a manifest that cannot be read is left to verify_checkpoint to report).
// A symlink (step_00000009 -> step_00000003) and a copy renamed to another step are not.
std::optional<std::string> not_this_step(const fs::path& p, bool symlink, int64_t step) {
  if (symlink) return std::string("it is a symbolic link (a checkpoint is a directory of its own)");
  try {
    const nlohmann::json m = nlohmann::json::parse(read_regular_file((p / kManifest).string(), "checkpoint manifest"));
    if (m.is_object() && m.contains("step") && m["step"].is_number_integer() && m["step"].get<int64_t>() != step) {
      return fmt::format("its manifest.json says step {} (a checkpoint copied or renamed to another step)",
                         m["step"].get<int64_t>());
    }
  } catch (const std::exception&) {}
  return std::nullopt;
}

}  // namespace

std::vector<CheckpointEntry> list_checkpoints(const std::string& root) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::end(it); it.increment(ec)) {
    std::optional<int64_t> step = parse_step_dir(it->path().filename().string());
    if (!step || !it->is_directory()) continue;
    if (!fs::is_regular_file(it->path() / kManifest)) continue;
    if (const std::optional<std::string> why = not_this_step(it->path(), it->is_symlink(), *step)) {
      spdlog::warn("ignoring checkpoint '{}': {}", it->path().string(), *why);
      continue;
    }
    out.push_back({*step, it->path().string()});
  }
  if (ec) fail("cannot list checkpoint root '{}': {}", root, ec.message());
  std::sort(out.begin(), out.end(), [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.step < b.step; });
  return out;
}

std::optional<CheckpointEntry> latest_checkpoint(const std::string& root) {
  std::vector<CheckpointEntry> all = list_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back();
}

void prune_checkpoints(const std::string& root, int keep_last, std::optional<int64_t> protect_step) {
  if (keep_last <= 0) return;
  std::vector<CheckpointEntry> all = list_checkpoints(root);
  if (all.size() <= static_cast<size_t>(keep_last)) return;
  size_t n_old = all.size() - static_cast<size_t>(keep_last);
  bool removed = false;
  for (size_t i = 0; i < n_old; ++i) {
    if (protect_step && all[i].step == *protect_step) continue;
    fs::path doomed = fs::path(root) / fmt::format(".{}.del-{}", checkpoint_dir_name(all[i].step), ::getpid());
    remove_all_or_fail(doomed);
    rename_or_fail(all[i].path, doomed);
    removed = true;
    remove_all_or_fail(doomed);
    spdlog::info("pruned checkpoint {}", all[i].path);
  }
  if (removed) fsync_dir(root);
}

int remove_stale_temp_dirs(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return 0;
  std::vector<fs::path> stale;
  for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::end(it); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind(".step_", 0) != 0) continue;
    for (const char* tag : {".tmp-", ".old-", ".del-"}) {
      if (name.find(tag) != std::string::npos) stale.push_back(it->path());
    }
  }
  if (ec) fail("cannot list checkpoint root '{}': {}", root, ec.message());
  std::sort(stale.begin(), stale.end());
  int removed = 0;
  for (const fs::path& p : stale) {
    std::string name = p.filename().string();
    size_t old_at = name.find(".old-");
    if (old_at != std::string::npos) {
      fs::path final_dir = fs::path(root) / name.substr(1, old_at - 1);
      if (!fs::exists(final_dir) && fs::is_regular_file(p / kManifest)) {
        spdlog::warn("restoring {} from {} (a replacing commit was interrupted)", final_dir.string(), p.string());
        rename_or_fail(p, final_dir);
        continue;
      }
    }
    spdlog::info("removing leftover of an interrupted checkpoint write: {}", p.string());
    remove_all_or_fail(p);
    ++removed;
  }
  if (removed > 0) fsync_dir(root);
  return removed;
}

}  // namespace am

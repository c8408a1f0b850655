// Crash-safe checkpoint directories. A checkpoint is <root>/step_<N> (N zero-padded to 8 digits)
// holding whatever files the trainer writes plus manifest.json, which lists every file with its
// size and XXH3-64 hash. The directory is assembled under a hidden temporary name and renamed into
// place only when complete, so <root>/step_<N> with a manifest is always a whole checkpoint.
//
//   CheckpointWriter w(root, step);
//   write_safetensors(w.path("model.safetensors"), ...);
//   write_file_atomic(w.path("trainer_state.json"), ...);
//   std::string dir = w.commit({{"tokens_seen", n}});   // -> <root>/step_00000100
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace am {

inline constexpr const char* kCheckpointFormat = "autonomoe-checkpoint";
inline constexpr int kCheckpointVersion = 1;

std::string checkpoint_dir_name(int64_t step);  // "step_00000100"
// "step_00000100" -> 100; nullopt for a name that is not exactly checkpoint_dir_name(N).
std::optional<int64_t> parse_step_dir(const std::string& name);

class CheckpointWriter {
 public:
  // Creates <root> if needed and the empty temp dir <root>/.step_<N>.tmp-<pid>/ (removing a
  // leftover of that exact name). UserError on a negative step or if it cannot be created.
  CheckpointWriter(const std::string& root, int64_t step);
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  ~CheckpointWriter();  // not committed: removes the temp dir

  // Where to write `file` inside the temp dir. `file` is a relative path ("model.safetensors",
  // "optim/rank0.bin"; parent folders are created) and must not be manifest.json or leave the dir.
  std::string path(const std::string& file) const;
  const std::string& temp_dir() const { return tmp_; }

  // Hashes every file in the temp dir, writes manifest.json
  //   {"format":"autonomoe-checkpoint","version":1,"step":N,"created":"2024-05-01T12:00:00Z",
  //    "files":{"<name>":{"bytes":..,"xxh3":"<16 hex>"}}, ...keys of `extra`}
  // fsyncs files and directories, renames the temp dir to <root>/step_<N> (an existing step_<N>
  // is renamed aside first and deleted afterwards) and fsyncs <root>. Returns the final path.
  // `extra` must be a JSON object (or null) without the reserved keys above.
  std::string commit(const nlohmann::json& extra = {});

 private:
  std::string root_;
  int64_t step_;
  std::string tmp_;
  bool committed_ = false;
};

// Checks that manifest.json exists and parses, lists every file in `required` (the files the
// caller will read: a manifest that omits one, or an empty "files" map, is refused), and every
// listed file is a regular file with the listed size and hash, and its "step" is an integer >= 0,
// the N of the directory's name when that is step_<N>. UserError naming the checkpoint
// and the file, saying "incomplete" (no manifest, a listed file missing, a required file not
// listed), "truncated" (file shorter than listed) or "corrupt" (hash or size mismatch, bad
// manifest, not a regular file), with a hint naming the newest other checkpoint in the same root.
// Returns the manifest. A non-empty `hash_only` hashes only the files it names (the others are
// checked for presence, type and size): reading a checkpoint's config verifies that file without
// reading the whole checkpoint, whose weights are hashed when they are loaded.
nlohmann::json verify_checkpoint(const std::string& dir, const std::vector<std::string>& required = {},
                                 const std::vector<std::string>& hash_only = {});

struct CheckpointEntry {
  int64_t step;
  std::string path;
};

// Complete checkpoints under root (step_<N> dirs holding a manifest.json), sorted by step.
// Temp dirs, other files and dirs without a manifest are ignored. A missing root gives {}.
// Presence of the manifest is checked, not the hashes: call verify_checkpoint before loading.
// A step_<N> that is a symbolic link, or whose manifest says another step (a copy renamed), is
// skipped with a warning naming it: it is not the checkpoint of step N, and taking it as the
// newest would resume at the wrong step (never deleted by pruning either).
std::vector<CheckpointEntry> list_checkpoints(const std::string& root);
std::optional<CheckpointEntry> latest_checkpoint(const std::string& root);

// Deletes all but the last `keep_last` complete checkpoints (keep_last <= 0: keeps all), never
// the one at `protect_step`. Each is renamed to a hidden name before it is deleted, so a crash
// midway never leaves a step_<N> that looks complete but is not.
void prune_checkpoints(const std::string& root, int keep_last, std::optional<int64_t> protect_step = {});

// Removes leftovers of crashed writes/prunes under root (.step_<N>.tmp-*, .old-*, .del-*) and
// returns how many were removed. An .old-* copy whose step_<N> is missing (crash between the two
// renames of a replacing commit) is renamed back to step_<N> instead. Call it at startup, from the
// one process that writes checkpoints, before any CheckpointWriter is created.
int remove_stale_temp_dirs(const std::string& root);

}  // namespace am

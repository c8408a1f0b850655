// TensorBoard scalars beside metrics.jsonl: every record the trainer writes to metrics.jsonl is
// also appended, as scalar summaries, to an event file <run dir>/tensorboard/
// events.out.tfevents.<unix time>.<host>.<pid>.<n> (TFRecord framing, io/tfrecord.h; Event and
// Summary protobuf messages written by hand, io/proto_wire.h). docs/training.md describes the tags.
//
// Like metrics.jsonl the folder reads as one uninterrupted run: a fresh run removes the event
// files an earlier attempt left there; a resumed run cuts every event file back to the records at
// steps <= the checkpoint's (a crash's cut-short record dropped too), then starts a new file.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace am {

// The scalars of a metrics record: (tag, value) for every number in it, "step" and "type" aside.
// A number at the top level is "<type>/<key>", with a "<type>_" prefix of the key dropped
// ("val_loss" of a "val" record -> "val/loss"); a number inside a nested object or array under key
// K is "<type>.<K>/<path>", the path's parts joined by '/', array elements by their index
// ("train.moe/0/ent_load", "train.aux_by_name/load_balance"). Arrays of numbers (per-expert
// loads) are left out. A record without a string "type" and an integer "step" has none.
std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& record);

class TensorBoardLog {
 public:
  // dir: the folder of the event files (created). resume_step < 0: a fresh run.
  // UserError when the folder or the file cannot be written.
  TensorBoardLog(const std::string& dir, int64_t resume_step);
  // One Event{wall_time, step, summary} with the record's scalars (none: nothing written); flushed.
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  void append(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace am

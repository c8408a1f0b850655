// metrics.jsonl: one JSON object per line, appended and flushed as training goes. On resume the
// records written after the checkpoint's step (by the interrupted run) are dropped first, so the
// file reads as one uninterrupted run.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <string>

namespace am {

class TensorBoardLog;

class MetricsLog {
 public:
  // resume_step < 0: a fresh run (the file is started anew).
  MetricsLog(const std::string& path, int64_t resume_step);
  ~MetricsLog();
  // Each record is also written to `tb` (train/tensorboard.h), after metrics.jsonl has it: an
  // event file that cannot be written is a warning and ends the TensorBoard copy, never the run.
  void mirror_to(std::unique_ptr<TensorBoardLog> tb);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
  std::unique_ptr<TensorBoardLog> tb_;
};

}  // namespace am

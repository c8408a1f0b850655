// metrics.jsonl: one JSON object per line, appended and flushed as training goes. On resume the
// records written after the checkpoint's step (by the interrupted run) are dropped first, so the
// file reads as one uninterrupted run.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace am {

class MetricsLog {
 public:
  // resume_step < 0: a fresh run (the file is started anew).
  MetricsLog(const std::string& path, int64_t resume_step);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace am

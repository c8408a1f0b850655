// Progress on stderr for long work: a redrawn bar when stderr is a terminal, otherwise a plain
// line at most every 10% (and at least every 30 s), so that logs stay readable. Nothing is shown
// during the first second, so short work prints nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace am {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "B");
  ~Progress();  // finish()es
  void update(int64_t done, const std::string& note = "");
  void finish();

 private:
  std::string label_, unit_;
  int64_t total_;
  bool tty_;
  bool finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_print_;
  int64_t last_done_ = 0, printed_done_ = -1;
  std::string printed_note_;
  std::string last_note_;
  void print(int64_t done, const std::string& note, bool final);
};

}  // namespace am

#include "data/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace am {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 1)),
      tty_(::isatty(::fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& note) {
  last_done_ = done;
  last_note_ = note;
  const auto now = std::chrono::steady_clock::now();
  if (now - start_ < std::chrono::seconds(1)) return;  // short work stays quiet
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (tty_) {
    if (since >= 0.2) print(done, note, false);
    return;
  }
  const int decile = static_cast<int>(std::min<int64_t>(10, done * 10 / total_));
  if (decile > last_decile_ || since >= 30) {
    last_decile_ = decile;
    print(done, note, false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (printed_done_ < 0) return;  // nothing shown so far: stay quiet
  // A plain log already ends with this line when the last update() printed it.
  if (!tty_ && printed_done_ == last_done_ && printed_note_ == last_note_) return;
  print(last_done_, last_note_, true);
}

void Progress::print(int64_t done, const std::string& note, bool final) {
  last_print_ = std::chrono::steady_clock::now();
  printed_done_ = done;
  printed_note_ = note;
  const double secs = std::chrono::duration<double>(last_print_ - start_).count();
  const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  const std::string rate_s =
      unit_ == "B" ? fmt::format("{:.1f} MB/s", rate / 1e6) : fmt::format("{:.0f} {}/s", rate, unit_);
  if (tty_) {
    constexpr int kWidth = 30;
    const int fill = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(fill), '=');
    if (fill < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - fill - 1), ' ');
    std::fprintf(stderr, "\r%s [%s] %5.1f%% %s %s\033[K%s", label_.c_str(), bar.c_str(), frac * 100, rate_s.c_str(),
                 note.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s: %5.1f%% (%.0f s, %s) %s\n", label_.c_str(), frac * 100, secs, rate_s.c_str(),
                 note.c_str());
  }
  std::fflush(stderr);
}

}  // namespace am

#include "train/metrics.h"

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/regular_file.h"
#include "train/tensorboard.h"

#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <sstream>
#include <system_error>

namespace am {

namespace {

// The records of metrics.jsonl at steps <= resume_step (lines cut short by a crash dropped).
std::string records_up_to(const std::string& path, int64_t resume_step) {
  std::istringstream in(read_file(path));
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!rec.is_object()) continue;  // a line cut short by a crash
    const auto step = rec.find("step");
    if (step == rec.end() || !step->is_number_integer()) continue;
    if (step->get<int64_t>() <= resume_step) kept += line + "\n";
  }
  return kept;
}

[[noreturn]] void write_failed(const std::string& path, int err) {
  throw UserError(fmt::format("cannot write '{}': {}", path, std::generic_category().message(err)),
                  err == ENOSPC ? "free disk space, then resume from the last checkpoint (autonomoe train ... --resume)"
                                : "check the run directory is writable");
}

// A FIFO (opening it for writing would block until a reader comes), a directory or a socket in
// place of metrics.jsonl is refused; a regular file or a character device (/dev/null) is fine.
void check_writable_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)) return;
  throw UserError(fmt::format("metrics file '{}' is {}, not a regular file", path, file_kind(st.st_mode)),
                  "remove it; the run writes metrics.jsonl there");
}

}  // namespace

// A fresh run truncates the file in place (following a symlink, as a log file would); a resume
// rewrites it atomically with the records it keeps.
MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  namespace fs = std::filesystem;
  check_writable_kind(path);
  std::error_code ec;
  if (resume_step >= 0 && fs::is_regular_file(path, ec)) {
    write_file_atomic(path, records_up_to(path, resume_step));
  }
  errno = 0;
  out_.open(path, resume_step >= 0 ? std::ios::app : std::ios::trunc);
  if (!out_) write_failed(path, errno != 0 ? errno : EIO);
}

MetricsLog::~MetricsLog() = default;

void MetricsLog::mirror_to(std::unique_ptr<TensorBoardLog> tb) { tb_ = std::move(tb); }

// Flushed at once, and checked: a full disk stops the run at the first record it cannot hold.
void MetricsLog::write(const nlohmann::json& record) {
  errno = 0;
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) write_failed(path_, errno != 0 ? errno : EIO);
  if (!tb_) return;
  try {
    tb_->write(record);
  } catch (const std::exception& e) {
    spdlog::warn("TensorBoard: {}; no more scalars go to {} (metrics.jsonl has every record)", e.what(), tb_->path());
    tb_.reset();
  }
}

}  // namespace am

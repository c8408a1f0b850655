#include "train/metrics.h"

#include "core/error.h"
#include "io/atomic_file.h"

#include <filesystem>
#include <sstream>

namespace am {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  namespace fs = std::filesystem;
  std::string kept;
  if (resume_step >= 0 && fs::exists(path)) {
    std::istringstream in(read_file(path));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (rec.is_discarded()) continue;  // a line cut short by a crash
      if (rec.value("step", int64_t{0}) <= resume_step) kept += line + "\n";
    }
  }
  write_file_atomic(path, kept);
  out_.open(path, std::ios::app);
  if (!out_) throw UserError(fmt::format("cannot open {} for writing", path));
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
}

}  // namespace am

#include "data/documents.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/regular_file.h"

namespace am {

namespace fs = std::filesystem;

bool is_jsonl_path(const std::string& path) {
  return path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
}

bool is_val_document(int64_t index, double val_fraction) {
  AM_CHECK(val_fraction >= 0 && val_fraction <= 1, "val_fraction {}", val_fraction);
  const int64_t q = std::llround(val_fraction * 1e6);  // f in millionths
  constexpr int64_t M = 1000000;
  auto ceil_frac = [&](int64_t i) { return (i * q + M - 1) / M; };  // ceil(i * f)
  return ceil_frac(index + 1) > ceil_frac(index);
}

DocumentReader::DocumentReader(std::vector<std::string> inputs, std::string text_field)
    : inputs_(std::move(inputs)), field_(std::move(text_field)) {
  if (inputs_.empty()) fail("no input files given");
  for (const auto& p : inputs_) {
    total_bytes_ += open_regular_file(p, "input file").size();
  }
}

int64_t DocumentReader::bytes_read() const {
  if (!in_) return done_bytes_;
  const auto pos = in_->tellg();
  return done_bytes_ + (pos >= 0 ? static_cast<int64_t>(pos) : 0);
}

bool DocumentReader::next(Document& doc) {
  while (file_ < inputs_.size()) {
    const std::string& path = inputs_[file_];
    if (!is_jsonl_path(path)) {
      // A plain-text file is one document.
      doc.text = read_regular_file(path, "input file");
      doc.source = path;
      done_bytes_ += static_cast<int64_t>(doc.text.size());
      ++file_;
      return true;
    }
    if (!in_) {
      in_ = open_regular_stream(path, "input file");
      line_ = 0;
    }
    while (std::getline(*in_, buf_)) {
      ++line_;
      if (buf_.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(buf_);
      } catch (const nlohmann::json::parse_error& e) {
        fail("{}:{}: not valid JSON: {}", path, line_, e.what());
      }
      if (!j.is_object()) fail("{}:{}: expected a JSON object per line, got {}", path, line_, j.type_name());
      const auto it = j.find(field_);
      if (it == j.end()) {
        throw UserError(fmt::format("{}:{}: no \"{}\" field", path, line_, field_),
                        "name the field that holds the text with --text-field");
      }
      if (!it->is_string())
        fail("{}:{}: field \"{}\" is a {}, expected a string", path, line_, field_, it->type_name());
      doc.text = it->get<std::string>();
      doc.source = fmt::format("{}:{}", path, line_);
      return true;
    }
    if (in_->bad()) fail("{}: read error", path);
    in_.reset();
    done_bytes_ += static_cast<int64_t>(fs::file_size(path));
    ++file_;
  }
  return false;
}

}  // namespace am

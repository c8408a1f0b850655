// Streams documents out of input files: each non-empty line of a .jsonl file is one document (the
// string in its text field); any other file is one document (its whole content).
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <vector>

namespace am {

struct Document {
  std::string text;
  std::string source;  // "file" or "file:line", for messages
};

class DocumentReader {
 public:
  // Checks up front that every input exists (UserError naming the first missing file).
  DocumentReader(std::vector<std::string> inputs, std::string text_field = "text");
  // Fills `doc` with the next document; false at the end. A JSONL line that is not a JSON object
  // with a string text field is a UserError naming file, line and field.
  bool next(Document& doc);
  int64_t bytes_read() const;  // of total_bytes(), for progress reports
  int64_t total_bytes() const { return total_bytes_; }

 private:
  std::vector<std::string> inputs_;
  std::string field_;
  size_t file_ = 0;  // index of the open (or next) input
  std::unique_ptr<std::istream> in_;
  int64_t line_ = 0;
  int64_t done_bytes_ = 0;  // bytes of the inputs already finished
  int64_t total_bytes_ = 0;
  std::string buf_;
};

bool is_jsonl_path(const std::string& path);  // ends in .jsonl

// The deterministic train/val split by document index i (0-based, in input order, counting every
// document read): document i is validation iff ceil((i + 1) * f) > ceil(i * f), with f rounded to
// millionths and evaluated in integers. Among the first N documents exactly ceil(N * f) are
// validation, evenly spaced and starting with document 0 (f = 0.05: documents 0, 20, 40, ...).
// f = 0 puts every document in train.
bool is_val_document(int64_t index, double val_fraction);

}  // namespace am

#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "data/documents.h"
#include "io/output_dir.h"
#include "io/regular_file.h"

namespace am {

namespace {

// Offers every non-empty line of every document to the SentencePiece trainer.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(DocumentReader& docs) : docs_(docs) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    while (true) {
      while (pos_ < doc_.text.size()) {
        size_t eol = doc_.text.find('\n', pos_);
        if (eol == std::string::npos) eol = doc_.text.size();
        size_t end = eol;
        if (end > pos_ && doc_.text[end - 1] == '\r') --end;
        line_.assign(doc_.text, pos_, end - pos_);
        pos_ = eol + 1;
        if (line_.find_first_not_of(" \t") != std::string::npos) {
          ++lines_;
          return;
        }
      }
      try {
        if (!docs_.next(doc_)) {
          done_ = true;
          return;
        }
      } catch (const UserError&) {
        error_ = std::current_exception();  // rethrown after Train() returns
        done_ = true;
        return;
      }
      pos_ = 0;
    }
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override {
    if (error_) return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, "input error");
    return sentencepiece::util::Status();
  }
  int64_t lines() const { return lines_; }
  std::exception_ptr error() const { return error_; }

 private:
  DocumentReader& docs_;
  Document doc_;
  size_t pos_ = 0;
  std::string line_;
  bool done_ = false;
  int64_t lines_ = 0;
  std::exception_ptr error_;
};

}  // namespace

TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& o) {
  if (o.model_prefix.empty()) fail("train-tokenizer: --model-prefix is required");
  if (o.vocab_size < 8) fail("train-tokenizer: vocab size {} is too small (need >= 8)", o.vocab_size);
  if (o.byte_fallback && o.vocab_size < 260) {
    fail(
        "train-tokenizer: vocab size {} cannot hold the 256 byte-fallback tokens and unk/bos/eos "
        "(need >= 260)",
        o.vocab_size);
  }
  const auto prefix_dir = std::filesystem::path(o.model_prefix).parent_path();
  if (!prefix_dir.empty()) {
    check_output_dir(prefix_dir.string(), "the directory of --model-prefix");  // names what is in the way
    create_output_dir(prefix_dir.string(), "the directory of --model-prefix");
  }
  DocumentReader docs(o.inputs, o.text_field);
  LineIterator it(docs);
  const unsigned threads =
      o.threads > 0 ? static_cast<unsigned>(o.threads) : std::max(1u, std::thread::hardware_concurrency());
  const std::unordered_map<std::string, std::string> args = {
      {"model_prefix", o.model_prefix},
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"unk_id", std::to_string(kUnkToken)},
      {"bos_id", std::to_string(kBosToken)},
      {"eos_id", std::to_string(kEotToken)},
      {"pad_id", "-1"},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"num_threads", std::to_string(threads)},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      // Training sentences are lines, so a newline is never seen in training; a dedicated piece
      // keeps newlines in encoded documents (also without byte fallback).
      {"user_defined_symbols", "\n"},
      {"hard_vocab_limit", "false"},
      {"minloglevel", o.verbose ? "0" : "2"},
  };
  sentencepiece::SetRandomGeneratorSeed(o.seed);
  const auto t0 = std::chrono::steady_clock::now();
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it);
  if (it.error()) std::rethrow_exception(it.error());
  if (!status.ok()) {
    throw UserError(fmt::format("SentencePiece training failed: {}", status.ToString()),
                    "check the inputs hold enough text for the vocabulary size");
  }
  TokenizerTrainResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.model_path = o.model_prefix + ".model";
  r.lines = it.lines();
  r.vocab_size = Tokenizer(r.model_path).vocab_size();
  return r;
}

Tokenizer::Tokenizer(const std::string& model_path)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  std::error_code ec;
  if (!std::filesystem::exists(model_path, ec)) {
    throw UserError(fmt::format("{}: tokenizer model not found", model_path),
                    "train one with `autonomoe-data train-tokenizer`");
  }
  const auto status = sp_->LoadFromSerializedProto(read_regular_file(model_path, "tokenizer model"));
  if (!status.ok()) fail("{}: cannot load SentencePiece model: {}", model_path, status.ToString());
}

Tokenizer::~Tokenizer() = default;

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

int Tokenizer::eot_token() const { return sp_->eos_id(); }

int Tokenizer::unk_token() const { return sp_->unk_id(); }

std::string Tokenizer::piece(int id) const { return sp_->IdToPiece(id); }

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!status.ok()) fail("{}: encoding failed: {}", path_, status.ToString());
  return {ids.begin(), ids.end()};
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  const std::vector<int> v(ids.begin(), ids.end());
  std::string out;
  const auto status = sp_->Decode(v, &out);
  if (!status.ok()) fail("{}: decoding failed: {}", path_, status.ToString());
  return out;
}

}  // namespace am

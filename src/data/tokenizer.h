// SentencePiece tokenizers: training one (BPE, byte fallback, unk/bos/eos = 0/1/2, eos being the
// end-of-text token) from text or JSONL inputs, and loading one to encode and decode.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace am {

inline constexpr int kUnkToken = 0;
inline constexpr int kBosToken = 1;
inline constexpr int kEotToken = 2;  // SentencePiece's eos: the end-of-text token

struct TokenizerTrainOptions {
  std::vector<std::string> inputs;  // .jsonl (the text field of each line) or plain text files
  std::string text_field = "text";
  int vocab_size = 4096;
  std::string model_prefix;         // writes PREFIX.model and PREFIX.vocab
  bool byte_fallback = true;        // unknown characters become <0xNN> byte tokens
  int threads = 0;                  // 0 = all cores
  int64_t max_sentences = 2000000;  // lines sampled for training (input_sentence_size)
  int max_sentence_length = 16384;  // longer lines (bytes) are skipped
  double character_coverage = 0.9995;
  uint32_t seed = 1234;  // sampling of the training lines
  bool verbose = false;  // SentencePiece's own log on stderr
};

struct TokenizerTrainResult {
  std::string model_path;
  int vocab_size = 0;
  int64_t lines = 0;  // non-empty lines offered to the trainer
  double seconds = 0;
};

// Every non-empty line of every document is one training sentence. Text is kept as it is
// (identity normalisation, no whitespace collapsing, digits split); a newline is its own piece
// (a user-defined symbol, id 3), so encoded documents keep their line structure.
TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& o);

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path);  // UserError naming the file if unreadable
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  int vocab_size() const;
  int eot_token() const;            // eos id
  int unk_token() const;            // -1 when the model has none
  std::string piece(int id) const;  // the piece's text ("</s>", "<unk>", "▁the")
  const std::string& path() const { return path_; }

  // Thread-safe (const): the encoder may run on several threads at once.
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace am

#include "train/export_tokenizer.h"

#include "core/error.h"
#include "data/dataset_meta.h"
#include "data/tokenizer.h"
#include "io/atomic_file.h"
#include "io/regular_file.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <filesystem>

namespace am {
namespace fs = std::filesystem;

namespace {

// The tokenizer, loaded (UserError naming the file if it is not a SentencePiece model), with the
// model's vocabulary.
void check_vocab(const Tokenizer& tok, const Config& cfg) {
  if (tok.vocab_size() != cfg.model.vocab_size) {
    throw UserError(fmt::format("tokenizer {} has {} pieces but the model's vocabulary (model.vocab_size) has {}",
                                tok.path(), tok.vocab_size(), cfg.model.vocab_size),
                    "pass the tokenizer the run's data was encoded with (--tokenizer FILE.model)");
  }
}

}  // namespace

std::string find_export_tokenizer(const Config& cfg, const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    check_vocab(Tokenizer(explicit_path), cfg);
    return explicit_path;
  }
  const std::optional<DatasetMeta> meta = read_dataset_meta(cfg.data.train);
  if (!meta) {
    spdlog::warn(
        "no tokenizer exported: the run's data ({}) has no dataset.json naming one; "
        "pass --tokenizer FILE.model",
        cfg.data.train);
    return "";
  }
  if (meta->tokenizer.empty()) {
    spdlog::warn("no tokenizer exported: the run's data ({}) was made without one", meta->path);
    return "";
  }
  const std::string path = meta->tokenizer_path();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw UserError(fmt::format("{} names the tokenizer {}, which is not there", meta->path, path),
                    "pass the SentencePiece model with --tokenizer FILE.model");
  }
  check_vocab(Tokenizer(path), cfg);
  return path;
}

// Hugging Face's SentencePiece tokenizer (LlamaTokenizer: a SentencePiece model with byte fallback
// and no normaliser of its own; `legacy: true` encodes exactly as SentencePiece does). Every
// training document starts with the end-of-text token, so it is also the token the tokenizer
// prepends (bos_token): a prompt reads as the start of a document, as in training.
void export_tokenizer(const Config& cfg, const std::string& tokenizer_path, const std::string& out_dir) {
  const Tokenizer tok(tokenizer_path);
  check_vocab(tok, cfg);
  const fs::path out(out_dir);
  write_file_atomic((out / "tokenizer.model").string(), read_regular_file(tokenizer_path, "tokenizer model"));
  const int eot = tok.eot_token(), unk = tok.unk_token();
  const nlohmann::json eot_piece = tok.piece(eot),
                       unk_piece = unk >= 0 ? nlohmann::json(tok.piece(unk)) : nlohmann::json();
  const nlohmann::ordered_json config = {{"tokenizer_class", "LlamaTokenizer"},
                                         {"bos_token", eot_piece},
                                         {"eos_token", eot_piece},
                                         {"unk_token", unk_piece},
                                         {"pad_token", nullptr},
                                         {"add_bos_token", true},
                                         {"add_eos_token", false},
                                         {"legacy", true},
                                         {"clean_up_tokenization_spaces", false},
                                         {"model_max_length", cfg.model.max_seq_len},
                                         {"sp_model_kwargs", nlohmann::json::object()}};
  write_file_atomic((out / "tokenizer_config.json").string(), config.dump(2) + "\n");
  const nlohmann::ordered_json special = {{"bos_token", eot_piece}, {"eos_token", eot_piece}, {"unk_token", unk_piece}};
  write_file_atomic((out / "special_tokens_map.json").string(), special.dump(2) + "\n");
  const std::string config_json = (out / "config.json").string();
  nlohmann::ordered_json model = nlohmann::ordered_json::parse(read_regular_file(config_json, "exported config"));
  model["bos_token_id"] = eot;
  model["eos_token_id"] = eot;
  write_file_atomic(config_json, model.dump(2) + "\n");
}

}  // namespace am

// The tokenizer of an exported model (`autonomoe export`): the SentencePiece model the run's data
// was encoded with, and the Hugging Face tokenizer config that loads it (docs/formats.md).
#pragma once

#include "config/config.h"

#include <string>

namespace am {

// The SentencePiece model to export: `explicit_path` when given, else the one the dataset.json of
// the config's data.train names. "" (and a warning saying why) when there is none: plain shards,
// or data made without a tokenizer (synthetic). UserError when the named file is missing, is not a
// SentencePiece model, or its vocabulary is not model.vocab_size.
std::string find_export_tokenizer(const Config& cfg, const std::string& explicit_path);

// Writes out_dir/tokenizer.model (a copy), tokenizer_config.json and special_tokens_map.json, and
// adds bos_token_id / eos_token_id to out_dir/config.json (written by export_weights first).
void export_tokenizer(const Config& cfg, const std::string& tokenizer_path, const std::string& out_dir);

}  // namespace am

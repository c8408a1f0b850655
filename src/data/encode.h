// `autonomoe-data encode`: tokenizes documents into train/val token shards plus dataset.json.
// Each document is encoded and preceded by the end-of-text token (llm.c's convention); document i
// goes to val or train by is_val_document(i, val_fraction) (data/documents.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset_meta.h"

namespace am {

struct EncodeOptions {
  std::string tokenizer;            // PREFIX.model
  std::vector<std::string> inputs;  // .jsonl (one document per line) or plain-text files
  std::string out_dir;
  std::string name;  // shard names: NAME_train_000000.bin, NAME_val_000000.bin
  double val_fraction = 0.05;
  int64_t shard_tokens = 100000000;
  std::string text_field = "text";
  int threads = 0;  // encoder threads, 0 = all cores
};

struct EncodeResult {
  DatasetMeta meta;                        // as written to out_dir/dataset.json
  int64_t skipped_documents = 0;           // documents whose text encodes to no token
  std::vector<std::string> removed_stale;  // shards of an earlier run with this name, removed
  double seconds = 0;
};

EncodeResult encode_dataset(const EncodeOptions& o);

// -sum p ln p over the nonzero counts.
double unigram_entropy_nats(const std::vector<int64_t>& counts);

}  // namespace am

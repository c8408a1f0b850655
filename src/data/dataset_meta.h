// dataset.json: the description `autonomoe-data encode` writes beside its shards and the trainer
// reads (vocabulary size, end-of-text token, tokenizer file, split sizes, unigram entropy).
// Plain llm.c shards have none; read_dataset_meta() then returns nullopt.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace am {

inline constexpr const char* kDatasetFormat = "autonomoe-dataset";
inline constexpr int kDatasetVersion = 1;

struct SplitMeta {
  std::vector<std::string> shards;  // file names, relative to the dataset directory
  int64_t tokens = 0;               // tokens over all shards (end-of-text tokens included)
  int64_t documents = 0;
};

struct DatasetMeta {
  int64_t vocab_size = 0;
  int32_t eot_token = 0;  // end-of-text token that precedes every document
  std::string tokenizer;  // file name of the SentencePiece .model, in the dataset directory
  SplitMeta train;
  SplitMeta val;
  double unigram_entropy_nats = 0;                  // entropy of the train split's unigram token distribution
  nlohmann::json extra = nlohmann::json::object();  // any other keys (provenance, options)

  std::string path;                    // where it was read from ("" when built in memory); not serialized
  std::string dir() const;             // directory of `path`
  std::string tokenizer_path() const;  // dir()/tokenizer
};

// The known keys first, in a fixed order, then `extra`.
nlohmann::ordered_json dataset_meta_to_json(const DatasetMeta& m);
// Parses and validates; errors (UserError) name `path_for_errors` and the offending key.
DatasetMeta dataset_meta_from_json(const nlohmann::json& j, const std::string& path_for_errors);

// Reads one dataset.json file (UserError if it is missing or malformed).
DatasetMeta read_dataset_meta_file(const std::string& path);
// Writes dir/dataset.json atomically (temporary file + rename).
void write_dataset_meta(const std::string& dir, const DatasetMeta& m);

// Looks for dataset.json in the directory of the first (sorted) match of shard_glob. No match or
// no dataset.json -> nullopt (plain llm.c shards still work); malformed -> UserError.
std::optional<DatasetMeta> read_dataset_meta(const std::string& shard_glob);

// The sorted matches of a glob pattern (empty when nothing matches).
std::vector<std::string> glob_sorted(const std::string& pattern);

}  // namespace am

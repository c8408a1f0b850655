#include "data/synthetic.h"

#include "core/rng.h"
#include "data/encode.h"
#include "data/shard.h"
#include "io/output_dir.h"

#include <filesystem>

namespace am {

std::vector<int32_t> synthetic_tokens(int64_t n, int64_t vocab_size, uint64_t seed) {
  const uint64_t key = stream_key(seed, "synthetic");
  uint64_t draw = 0;
  auto next = [&]() { return splitmix64(key + splitmix64(draw++)); };
  std::vector<int32_t> cycle(17);
  for (auto& c : cycle) c = static_cast<int32_t>(next() % static_cast<uint64_t>(vocab_size));
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const bool noise = next() % 10 == 0;
    out[i] = noise ? static_cast<int32_t>(next() % static_cast<uint64_t>(vocab_size)) : cycle[i % 17];
  }
  return out;
}

DatasetMeta write_synthetic_dataset(const std::string& dir, const std::string& name, int64_t vocab_size,
                                    int64_t train_tokens, int64_t val_tokens, uint64_t seed) {
  create_output_dir(dir, "--out-dir");
  // One stream, split: validation follows the same cycle as training.
  const std::vector<int32_t> all = synthetic_tokens(train_tokens + val_tokens, vocab_size, seed);
  const std::vector<int32_t> train(all.begin(), all.begin() + train_tokens);
  const std::vector<int32_t> val(all.begin() + train_tokens, all.end());
  const std::string train_name = name + "_train_000000.bin", val_name = name + "_val_000000.bin";
  write_shard((std::filesystem::path(dir) / train_name).string(), train, vocab_size);
  write_shard((std::filesystem::path(dir) / val_name).string(), val, vocab_size);

  std::vector<int64_t> counts(static_cast<size_t>(vocab_size), 0);
  for (int32_t t : train) ++counts[static_cast<size_t>(t)];
  DatasetMeta m;
  m.vocab_size = vocab_size;
  m.eot_token = 0;
  m.tokenizer = "";
  m.train = SplitMeta{{train_name}, train_tokens, 1};
  m.val = SplitMeta{{val_name}, val_tokens, 1};
  m.unigram_entropy_nats = unigram_entropy_nats(counts);
  m.extra["source"] = "synthetic";
  m.extra["seed"] = seed;
  write_dataset_meta(dir, m);
  m.path = (std::filesystem::path(dir) / "dataset.json").string();
  return m;
}

}  // namespace am

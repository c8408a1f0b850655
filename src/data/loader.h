// The training data loader: (B, T) batches of next-token-prediction windows read from token shards.
//
// Windows (docs/data.md has the full statement): a shard of n tokens holds floor((n - 1) / T)
// windows of T + 1 tokens at offsets 0, T, 2T, ...; inputs = window[0, T), targets = window[1, T].
// Windows never cross shards. The global window list is shard 0's windows, then shard 1's, ...
// (shards sorted by name). An epoch visits the global list in order, or, with shuffling, in the
// permutation epoch_permutation(W, seed, epoch) (data/shuffle.h). Each next() consumes world * B
// consecutive windows of the epoch order, rank r taking [r * B, (r + 1) * B); a batch that runs
// past the end of an epoch continues with the next epoch's order. The position after k calls is
// therefore (epoch, cursor) = divmod(k * world * B, W).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/shard.h"

namespace am {

struct LoaderPosition {
  uint64_t epoch = 0;
  uint64_t cursor = 0;  // next window in the epoch order, 0 <= cursor < windows_per_epoch()
  bool operator==(const LoaderPosition&) const = default;
};

class DataLoader {
 public:
  // pattern: a glob (e.g. "data/brown/brown_train_*.bin"), matches sorted by name; every shard is
  // validated up front. B sequences of T tokens per batch; every token must be < vocab_size.
  // rank/world: data-parallel slicing of each read of world * B windows (one micro-batch per rank;
  // an optimizer step reads `accumulation` of them: its global batch, train/batch.h).
  DataLoader(const std::string& pattern, int B, int T, bool shuffle, uint64_t seed, int vocab_size, int rank = 0,
             int world = 1);

  // inputs, targets: (B, T) int32 each; targets are the inputs shifted left by one token. The
  // first call of each epoch (and the first after construction, a seek or a reset) checks that no shard
  // changed since it was opened (ShardReader::check_unchanged).
  void next(int32_t* inputs, int32_t* targets);

  LoaderPosition position() const { return pos_; }
  void seek(const LoaderPosition& p);  // UserError if p.cursor >= windows_per_epoch()
  void reset() { seek({}); }

  // {"epoch", "cursor", "fingerprint": {"shards": [{"name", "tokens"}...], "windows_per_step"
  // (the global batch), "T", "shuffle", "seed"}}. restore() refuses (UserError naming what differs) a state whose
  // fingerprint does not match this loader, e.g. because the data changed since the checkpoint; a different
  // windows_per_step only when `allow_batch_change` is false (the position counts global windows,
  // so a run that changes its global batch on purpose continues from the same window).
  // Its epoch and cursor must be integers >= 0, the cursor below windows_per_epoch(); errors name
  // the field as "<where>.cursor" (the trainer passes "<file>: train_loader").
  nlohmann::json state() const;
  void restore(const nlohmann::json& s, bool allow_batch_change = false,
               const std::string& where = "data loader state");
  // The windows one optimizer step reads over all ranks: the global batch (train/batch.h).
  // Default world * B (one micro-batch per step).
  void set_windows_per_step(int64_t w) { windows_per_step_ = w; }

  int64_t windows_per_epoch() const { return window_start_.back(); }
  int64_t total_tokens() const { return total_tokens_; }
  const std::vector<std::string>& shards() const { return paths_; }
  int B() const { return B_; }
  int T() const { return T_; }

 private:
  std::string pattern_;
  int B_, T_;
  bool shuffle_;
  uint64_t seed_;
  int vocab_size_, rank_, world_;
  int64_t windows_per_step_ = 0;  // 0: world_ * B_
  std::vector<std::string> paths_;
  std::vector<ShardReader> readers_;
  std::vector<int64_t> window_start_;  // (n_shards + 1): first global window of each shard
  int64_t total_tokens_ = 0;
  LoaderPosition pos_;
  uint64_t checked_epoch_ = UINT64_MAX;  // the epoch at whose start the shards were last checked
  std::vector<int32_t> window_;          // (T + 1) scratch

  // Two cached epoch permutations (a batch can straddle two epochs).
  struct CachedOrder {
    uint64_t epoch = UINT64_MAX;
    std::vector<uint32_t> order;
  };
  CachedOrder cache_[2];
  int cache_next_ = 0;

  uint64_t window_at(uint64_t epoch, uint64_t cursor);  // global window id
  LoaderPosition advanced(LoaderPosition p, uint64_t k) const;
  void read_window(uint64_t window, int32_t* out);  // T + 1 tokens, vocabulary-checked
  nlohmann::json fingerprint() const;
};

}  // namespace am

#include "data/loader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "data/dataset_meta.h"
#include "data/shuffle.h"

namespace am {

namespace {

const char* kEditedHint = "the checkpoint was edited or damaged; use another checkpoint";
const char* kDataHint = "prepare data with scripts/prepare_brown.sh or `autonomoe-data encode` (docs/data.md)";

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

}  // namespace

DataLoader::DataLoader(const std::string& pattern, int B, int T, bool shuffle, uint64_t seed, int vocab_size, int rank,
                       int world)
    : pattern_(pattern),
      B_(B),
      T_(T),
      shuffle_(shuffle),
      seed_(seed),
      vocab_size_(vocab_size),
      rank_(rank),
      world_(world) {
  if (B < 1) fail("data loader: batch size B must be >= 1, got {}", B);
  if (T < 1) fail("data loader: sequence length T must be >= 1, got {}", T);
  if (vocab_size < 1) fail("data loader: vocab_size must be >= 1, got {}", vocab_size);
  if (world < 1 || rank < 0 || rank >= world) {
    fail("data loader: rank {} of world {} (need world >= 1 and 0 <= rank < world)", rank, world);
  }
  paths_ = glob_sorted(pattern);
  if (paths_.empty()) throw UserError(fmt::format("no token shards match \"{}\"", pattern), kDataHint);

  window_start_.push_back(0);
  readers_.reserve(paths_.size());
  for (const auto& p : paths_) {
    readers_.emplace_back(p);
    const int64_t n = readers_.back().n_tokens();
    const int64_t w = (n - 1) / T;
    if (w == 0) spdlog::warn("{}: {} tokens is shorter than one window of T + 1 = {}; skipped", p, n, T + 1);
    total_tokens_ += n;
    window_start_.push_back(window_start_.back() + w);
  }
  const int64_t W = windows_per_epoch();
  const int64_t need = static_cast<int64_t>(world) * B;
  if (W < need) {
    throw UserError(fmt::format("\"{}\": {} shard(s) with {} tokens hold {} windows of T + 1 = {} tokens, fewer "
                                "than one micro-batch on every rank, world * B = {} * {} = {}",
                                pattern, paths_.size(), total_tokens_, W, T + 1, world, B, need),
                    "use more data, a shorter sequence length or a smaller batch");
  }
  if (shuffle && static_cast<uint64_t>(W) > UINT32_MAX) {
    fail(
        "\"{}\": {} windows per epoch is more than the shuffler supports (2^32 - 1); use a longer "
        "sequence length or fewer shards",
        pattern, W);
  }
  window_.resize(static_cast<size_t>(T) + 1);
}

LoaderPosition DataLoader::advanced(LoaderPosition p, uint64_t k) const {
  const uint64_t W = static_cast<uint64_t>(windows_per_epoch());
  const uint64_t c = p.cursor + k;
  return {p.epoch + c / W, c % W};
}

uint64_t DataLoader::window_at(uint64_t epoch, uint64_t cursor) {
  if (!shuffle_) return cursor;
  for (const auto& c : cache_) {
    if (c.epoch == epoch) return c.order[cursor];
  }
  CachedOrder& slot = cache_[cache_next_];
  cache_next_ ^= 1;
  slot.order = epoch_permutation(static_cast<uint64_t>(windows_per_epoch()), seed_, epoch);
  slot.epoch = epoch;
  return slot.order[cursor];
}

void DataLoader::read_window(uint64_t window, int32_t* out) {
  // The shard holding this window: the last s with window_start_[s] <= window.
  const auto it = std::upper_bound(window_start_.begin(), window_start_.end(), static_cast<int64_t>(window));
  const size_t s = static_cast<size_t>(it - window_start_.begin()) - 1;
  AM_CHECK(s < readers_.size(), "window {} of {}", window, windows_per_epoch());
  const int64_t offset = (static_cast<int64_t>(window) - window_start_[s]) * T_;
  readers_[s].read(offset, T_ + 1, out);
  for (int i = 0; i <= T_; ++i) {
    if (out[i] < 0 || out[i] >= vocab_size_) {
      throw UserError(fmt::format("{}: token {} at offset {} is outside the vocabulary [0, {})", paths_[s],
                                  static_cast<uint32_t>(out[i]), offset + i, vocab_size_),
                      "the shards were made with a larger vocabulary than model.vocab_size; use the "
                      "tokenizer's vocabulary size (dataset.json: vocab_size)");
    }
  }
}

void DataLoader::next(int32_t* inputs, int32_t* targets) {
  if (pos_.epoch != checked_epoch_) {
    for (const ShardReader& r : readers_) r.check_unchanged();
    checked_epoch_ = pos_.epoch;
  }
  LoaderPosition p = advanced(pos_, static_cast<uint64_t>(rank_) * B_);
  for (int b = 0; b < B_; ++b) {
    read_window(window_at(p.epoch, p.cursor), window_.data());
    std::memcpy(inputs + static_cast<size_t>(b) * T_, window_.data(), sizeof(int32_t) * T_);
    std::memcpy(targets + static_cast<size_t>(b) * T_, window_.data() + 1, sizeof(int32_t) * T_);
    p = advanced(p, 1);
  }
  pos_ = advanced(pos_, static_cast<uint64_t>(world_) * B_);
}

void DataLoader::seek(const LoaderPosition& p) {
  if (p.cursor >= static_cast<uint64_t>(windows_per_epoch())) {
    fail("data loader \"{}\": cannot seek to cursor {}: an epoch has {} windows (valid: 0 .. {})", pattern_, p.cursor,
         windows_per_epoch(), windows_per_epoch() - 1);
  }
  pos_ = p;
  checked_epoch_ = UINT64_MAX;
}

nlohmann::json DataLoader::fingerprint() const {
  nlohmann::json shards = nlohmann::json::array();
  for (size_t i = 0; i < paths_.size(); ++i) {
    shards.push_back({{"name", base_name(paths_[i])}, {"tokens", readers_[i].n_tokens()}});
  }
  // windows_per_step = the global batch: a run may resume on another number of ranks or another
  // micro-batch as long as the global batch is the same (the position is a count of global windows).
  const int64_t per_step = windows_per_step_ > 0 ? windows_per_step_ : static_cast<int64_t>(B_) * world_;
  return {{"shards", shards}, {"windows_per_step", per_step}, {"T", T_}, {"shuffle", shuffle_}, {"seed", seed_}};
}

nlohmann::json DataLoader::state() const {
  return {{"epoch", pos_.epoch}, {"cursor", pos_.cursor}, {"fingerprint", fingerprint()}};
}

namespace {

std::string describe_shards(const nlohmann::json& shards) {
  std::string s = fmt::format("{} shard(s)", shards.size());
  const size_t show = std::min<size_t>(shards.size(), 3);
  for (size_t i = 0; i < show; ++i) {
    const nlohmann::json& sh = shards[i];
    const bool ok = sh.is_object() && sh.contains("name") && sh["name"].is_string() && sh.contains("tokens") &&
                    sh["tokens"].is_number_integer();
    s += ok ? fmt::format("{} {} ({} tokens)", i == 0 ? ":" : ",", sh["name"].get<std::string>(),
                          sh["tokens"].get<int64_t>())
            : fmt::format("{} {}", i == 0 ? ":" : ",", sh.dump());
  }
  if (shards.size() > show) s += ", ...";
  return s;
}

// Field `key` of the state `s` (named `where` in errors): an integer >= 0.
uint64_t state_count(const nlohmann::json& s, const char* key, const std::string& where) {
  if (!s.contains(key)) throw UserError(fmt::format("{}.{}: missing", where, key), kEditedHint);
  const nlohmann::json& v = s[key];
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0)) {
    throw UserError(fmt::format("{}.{}: expected an integer >= 0, got {}", where, key, v.dump()), kEditedHint);
  }
  return v.get<uint64_t>();
}

}  // namespace

void DataLoader::restore(const nlohmann::json& s, bool allow_batch_change, const std::string& where) {
  const char* hint = "resume with the same data and data settings, or start a new run";
  if (!s.is_object()) {
    throw UserError(fmt::format("{}: expected an object with epoch, cursor and fingerprint, got {}", where, s.dump()),
                    kEditedHint);
  }
  const uint64_t epoch = state_count(s, "epoch", where), cursor = state_count(s, "cursor", where);
  if (!s.contains("fingerprint") || !s["fingerprint"].is_object()) {
    throw UserError(fmt::format("{}.fingerprint: expected an object, got {}", where,
                                s.contains("fingerprint") ? s["fingerprint"].dump() : "nothing"),
                    kEditedHint);
  }
  const nlohmann::json now = fingerprint();
  const nlohmann::json& then = s["fingerprint"];
  std::vector<std::string> diffs;
  for (const char* key : {"windows_per_step", "T", "shuffle", "seed"}) {
    if (allow_batch_change && std::string(key) == "windows_per_step") continue;
    if (!then.contains(key) || then[key] != now[key]) {
      diffs.push_back(fmt::format("{}: checkpoint {}, now {}", key, then.contains(key) ? then[key].dump() : "(missing)",
                                  now[key].dump()));
    }
  }
  static const nlohmann::json kNoShards = nlohmann::json::array();
  const nlohmann::json& ts = then.contains("shards") && then["shards"].is_array() ? then["shards"] : kNoShards;
  const nlohmann::json& ns = now["shards"];
  if (ts != ns) {
    std::string d = fmt::format("shards: checkpoint {}; now {}", describe_shards(ts), describe_shards(ns));
    for (size_t i = 0; i < std::min(ts.size(), ns.size()); ++i) {
      if (ts[i] != ns[i]) {
        d += fmt::format(" (first difference: shard {}: checkpoint {}, now {})", i, ts[i].dump(), ns[i].dump());
        break;
      }
    }
    diffs.push_back(d);
  }
  if (!diffs.empty()) {
    std::string msg = fmt::format(
        "{} for \"{}\" does not match the checkpoint "
        "(the data or data settings changed):",
        where, pattern_);
    for (const auto& d : diffs) msg += "\n  " + d;
    throw UserError(msg, hint);
  }
  if (cursor >= static_cast<uint64_t>(windows_per_epoch())) {  // state() never writes one
    throw UserError(fmt::format("{}.cursor: expected an integer below {} (the windows of an epoch of \"{}\"), got {}",
                                where, windows_per_epoch(), pattern_, cursor),
                    kEditedHint);
  }
  seek({epoch, cursor});
}

}  // namespace am

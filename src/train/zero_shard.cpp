#include "train/zero_shard.h"

#include "core/error.h"

#include <algorithm>

namespace am {
namespace {

int64_t kind_numel(const ParamTable& table, ShardKind kind) {
  int64_t n = 0;
  for (const ParamSpec& s : table.specs()) {
    if (shard_kind(s) == kind) n += s.numel();
  }
  return n;
}

// Rank r's range [lo, hi) of a flat space of n elements over `ranks` ranks.
std::pair<int64_t, int64_t> range_of(int64_t n, int ranks, int r) {
  AM_CHECK(ranks >= 1 && r >= 0 && r < ranks, "shard {} of {}", r, ranks);
  return {n * r / ranks, n * (r + 1) / ranks};
}

}  // namespace

std::optional<ShardKind> shard_kind(const ParamSpec& spec) {
  if (!spec.trainable) return std::nullopt;
  return spec.expert >= 0 ? ShardKind::Expert : ShardKind::Dense;
}

std::vector<ShardPiece> shard_pieces(const ParamTable& table, ShardKind kind, int ranks, int rank) {
  const auto [lo, hi] = range_of(kind_numel(table, kind), ranks, rank);
  std::vector<ShardPiece> out;
  int64_t pos = 0, at = 0;  // pos: the tensor's first element in the kind's flat space
  for (int i = 0; i < table.size() && pos < hi; ++i) {
    const ParamSpec& s = table.at(i);
    if (shard_kind(s) != kind) continue;
    const int64_t b = std::max(lo, pos), e = std::min(hi, pos + s.numel());
    if (b < e) {
      out.push_back(ShardPiece{i, b - pos, e - pos, at});
      at += e - b;
    }
    pos += s.numel();
  }
  return out;
}

std::vector<GatherRun> gather_runs(const ParamTable& table, int dense_ranks, int expert_ranks) {
  const int64_t n_dense = kind_numel(table, ShardKind::Dense), n_expert = kind_numel(table, ShardKind::Expert);
  std::vector<GatherRun> runs;
  int64_t pos_dense = 0, pos_expert = 0;
  for (int i = 0; i < table.size();) {
    const std::optional<ShardKind> k = shard_kind(table.at(i));
    if (!k) {
      ++i;
      continue;
    }
    const ShardKind kind = *k;
    GatherRun run;
    run.first = run.last = i;
    run.kind = kind;
    while (run.last + 1 < table.size() && shard_kind(table.at(run.last + 1)) == kind) ++run.last;
    const ParamSpec &a = table.at(run.first), &b = table.at(run.last);
    const int64_t len = b.offset + b.numel() - a.offset;  // back to back in the buffer
    int64_t& pos = kind == ShardKind::Dense ? pos_dense : pos_expert;
    const int ranks = kind == ShardKind::Dense ? dense_ranks : expert_ranks;
    const int64_t n = kind == ShardKind::Dense ? n_dense : n_expert;
    for (int r = 0; r < ranks; ++r) {
      const auto [lo, hi] = range_of(n, ranks, r);
      const int64_t s = std::clamp(lo, pos, pos + len), e = std::clamp(hi, pos, pos + len);
      run.counts.push_back(e - s);
      run.offsets.push_back(s - pos);
    }
    pos += len;
    runs.push_back(std::move(run));
    i = runs.back().last + 1;
  }
  return runs;
}

ZeroShard make_zero_shard(const ParamTable& table, int dense_ranks, int dense_rank, int expert_ranks, int expert_rank) {
  ZeroShard z;
  z.dense = shard_pieces(table, ShardKind::Dense, dense_ranks, dense_rank);
  z.expert = shard_pieces(table, ShardKind::Expert, expert_ranks, expert_rank);
  z.piece_of.assign(static_cast<size_t>(table.size()), -1);
  for (const std::vector<ShardPiece>* part : {&z.dense, &z.expert}) {
    int64_t& n = part == &z.dense ? z.dense_numel : z.expert_numel;
    for (size_t p = 0; p < part->size(); ++p) {
      z.piece_of[static_cast<size_t>((*part)[p].tensor)] = static_cast<int>(p);
      n += (*part)[p].numel();
    }
  }
  z.runs = gather_runs(table, dense_ranks, expert_ranks);
  return z;
}

}  // namespace am

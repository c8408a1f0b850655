// ZeRO-1 shard layout (docs/distributed.md, "ZeRO-1"): which elements of which parameters a rank
// keeps AdamW moments for and updates. The trainable tensors of one kind, in table order, form one
// flat element space of N elements:
//   dense tensors  (replicated on every rank)             shared by the world's W ranks
//   expert weights (one copy per expert-parallel group)   shared by the replica group's W/ep ranks
// Over R ranks, rank r's range is [floor(r N / R), floor((r+1) N / R)) (sizes differ by at most
// one element), cut at tensor boundaries into pieces: AdamW's weight decay is per tensor, and a
// piece is a flat view of one tensor. Pure functions of the table: every rank can compute any
// rank's pieces (the checkpoint gather does).
#pragma once

#include "params/params.h"

#include <optional>
#include <vector>

namespace am {

enum class ShardKind { Dense, Expert };

// Elements [begin, end) of table tensor `tensor`; its moments start at element `at` of the rank's
// part of this kind (the pieces of one kind lie back to back in table order).
struct ShardPiece {
  int tensor = 0;
  int64_t begin = 0, end = 0;
  int64_t at = 0;
  int64_t numel() const { return end - begin; }
};

// The kind of a tensor; nullopt for one the optimizer leaves alone (not trainable).
std::optional<ShardKind> shard_kind(const ParamSpec& spec);

// Rank `rank`'s pieces of `kind` when that kind is shared by `ranks` ranks, in table order.
std::vector<ShardPiece> shard_pieces(const ParamTable& table, ShardKind kind, int ranks, int rank);

// A maximal run [first, last] of consecutive trainable tensors of one kind (one contiguous span of
// the parameter buffer) and the part of it each rank of the kind's group updates: counts[r]
// elements from offsets[r] (elements from the run's start). The all-gather after the update.
struct GatherRun {
  int first = 0, last = 0;
  ShardKind kind = ShardKind::Dense;
  std::vector<int64_t> counts, offsets;  // [ranks of the kind's group]
};
std::vector<GatherRun> gather_runs(const ParamTable& table, int dense_ranks, int expert_ranks);

// One rank's shard: its pieces of both kinds; its moment buffers hold the dense pieces, then the
// expert pieces.
struct ZeroShard {
  std::vector<ShardPiece> dense, expert;
  int64_t dense_numel = 0, expert_numel = 0;  // elements of each part
  std::vector<GatherRun> runs;
  std::vector<int> piece_of;  // [tensor] -> index into dense or expert (by the tensor's kind), or -1

  int64_t numel() const { return dense_numel + expert_numel; }
};
ZeroShard make_zero_shard(const ParamTable& table, int dense_ranks, int dense_rank, int expert_ranks, int expert_rank);

}  // namespace am

#include "dist/rank_agreement.h"

#include "core/error.h"

#include <xxhash.h>

#include <algorithm>

namespace am {
namespace {

// The facts as one string: each key and value preceded by its length ("7:run.seed1:0...").
std::string serialize(const std::vector<RunFact>& facts) {
  std::string s;
  for (const RunFact& f : facts) {
    for (const std::string* part : {&f.key, &f.value}) s += std::to_string(part->size()) + ":" + *part;
  }
  return s;
}

std::vector<RunFact> parse(const std::string& s) {
  std::vector<RunFact> facts;
  size_t at = 0;
  auto next = [&] {
    const size_t colon = s.find(':', at);
    AM_CHECK(colon != std::string::npos, "malformed run facts at {}", at);
    const size_t n = std::stoul(s.substr(at, colon - at));
    AM_CHECK(colon + 1 + n <= s.size(), "run facts truncated at {}", at);
    at = colon + 1 + n;
    return s.substr(colon + 1, n);
  };
  while (at < s.size()) {
    RunFact f;
    f.key = next();
    f.value = next();
    facts.push_back(std::move(f));
  }
  return facts;
}

// `root`'s string `mine`, on every rank (its length first).
std::string broadcast_string(Comm& world, const std::string& mine, int root) {
  uint64_t n = mine.size();
  world.broadcast(&n, sizeof n, root);
  std::string s = world.rank() == root ? mine : std::string(n, '\0');
  if (n > 0) world.broadcast(s.data(), n, root);
  return s;
}

// 1 + the index of the first fact where `mine` differs from `root`'s (a fact one list lacks
// counts as different), or 0 when they are the same.
int64_t first_difference(const std::vector<RunFact>& mine, const std::vector<RunFact>& root) {
  const size_t n = std::max(mine.size(), root.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= mine.size() || i >= root.size() || mine[i].key != root[i].key || mine[i].value != root[i].value) {
      return static_cast<int64_t>(i) + 1;
    }
  }
  return 0;
}

std::string describe(const std::vector<RunFact>& facts, size_t i) {
  return i < facts.size() ? fmt::format("{} = {}", facts[i].key, facts[i].value) : "nothing more";
}

// The slow path, after the hashes differed: finds the lowest rank and first fact that differ from
// rank 0's, and throws the same UserError on every rank.
[[noreturn]] void report_disagreement(Comm& world, const std::vector<RunFact>& facts) {
  const std::vector<RunFact> root = parse(broadcast_string(world, serialize(facts), 0));
  std::vector<int64_t> first(static_cast<size_t>(world.size()), 0);
  first[static_cast<size_t>(world.rank())] = first_difference(facts, root);
  world.all_reduce_sum(first);
  int r = 1;
  while (r < world.size() && first[static_cast<size_t>(r)] == 0) ++r;
  AM_CHECK(r < world.size(), "the ranks' run facts hash differently but are the same");
  const size_t i = static_cast<size_t>(first[static_cast<size_t>(r)] - 1);
  const std::vector<RunFact> one =
      world.rank() == r && i < facts.size() ? std::vector<RunFact>{facts[i]} : std::vector<RunFact>{};
  const std::vector<RunFact> theirs = parse(broadcast_string(world, serialize(one), r));
  const std::string hint =
      "every rank must run the same config (files and --set options), on the same data, resuming the same "
      "checkpoint: check what the launcher passes to each rank (docs/distributed.md, \"Ranks must agree\")";
  if (i < root.size() && !theirs.empty() && theirs[0].key == root[i].key) {
    throw UserError(fmt::format("the ranks disagree on {}: rank 0 has {}, rank {} has {}", root[i].key, root[i].value,
                                r, theirs[0].value),
                    hint);
  }
  throw UserError(
      fmt::format("the ranks disagree: rank 0 has {}, rank {} has {}", describe(root, i), r, describe(theirs, 0)),
      hint);
}

}  // namespace

uint64_t facts_hash(const std::vector<RunFact>& facts) {
  const std::string s = serialize(facts);
  return XXH3_64bits(s.data(), s.size());
}

void require_ranks_agree(Comm& world, const std::vector<RunFact>& facts) {
  if (world.size() == 1) return;
  const uint64_t mine = facts_hash(facts);
  uint64_t root = mine;
  world.broadcast(&root, sizeof root, 0);
  if (world.all_reduce_sum(mine == root ? 0.0 : 1.0) == 0) return;
  report_disagreement(world, facts);
}

}  // namespace am

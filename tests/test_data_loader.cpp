#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "core/error.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/shuffle.h"
#include "test_data_util.h"

using namespace am;
using am::test::TempDir;
using am::test::user_error;

namespace {

using Window = std::vector<int32_t>;  // T + 1 tokens

// Shards whose tokens say where they are: token i of shard s is s * 1000 + i.
std::vector<std::vector<int32_t>> make_shards(const TempDir& d, const std::vector<int>& sizes,
                                              const std::string& prefix = "s") {
  std::vector<std::vector<int32_t>> all;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::vector<int32_t> t(static_cast<size_t>(sizes[s]));
    for (int i = 0; i < sizes[s]; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>(s * 1000 + i);
    // Names sort in shard order; written out of order to check the loader sorts.
    write_shard(d.file(prefix + "_" + std::to_string(s) + ".bin"), t, 10000);
    all.push_back(std::move(t));
  }
  return all;
}

// The documented global window list, computed independently: windows at offsets 0, T, 2T, ...
// while a whole window of T + 1 tokens fits in the shard.
std::vector<Window> expected_windows(const std::vector<std::vector<int32_t>>& shards, int T) {
  std::vector<Window> w;
  for (const auto& s : shards) {
    for (size_t off = 0; off + static_cast<size_t>(T) + 1 <= s.size(); off += static_cast<size_t>(T)) {
      w.emplace_back(s.begin() + static_cast<long>(off), s.begin() + static_cast<long>(off) + T + 1);
    }
  }
  return w;
}

// One batch as B windows (inputs plus the last target), checking targets = inputs shifted by one.
std::vector<Window> batch(DataLoader& l) {
  const int B = l.B(), T = l.T();
  std::vector<int32_t> in(static_cast<size_t>(B * T)), tg(static_cast<size_t>(B * T));
  l.next(in.data(), tg.data());
  std::vector<Window> out;
  for (int b = 0; b < B; ++b) {
    Window w(in.begin() + b * T, in.begin() + (b + 1) * T);
    for (int t = 0; t + 1 < T; ++t)
      REQUIRE(tg[static_cast<size_t>(b * T + t)] == in[static_cast<size_t>(b * T + t + 1)]);
    w.push_back(tg[static_cast<size_t>(b * T + T - 1)]);
    out.push_back(std::move(w));
  }
  return out;
}

std::vector<Window> epoch_windows(DataLoader& l, int batches) {
  std::vector<Window> all;
  for (int i = 0; i < batches; ++i) {
    auto b = batch(l);
    all.insert(all.end(), b.begin(), b.end());
  }
  return all;
}

}  // namespace

TEST_CASE("splitmix64 matches the published reference outputs", "[data]") {
  // Vigna's splitmix64.c seeded with 1234567.
  SplitMix64 g(1234567);
  CHECK(g.next() == 6457827717110365317ull);
  CHECK(g.next() == 3203168211198807973ull);
  CHECK(g.next() == 9817491932198370423ull);
  CHECK(g.next() == 4593380528125082431ull);
  CHECK(g.next() == 16408922859458223821ull);
}

TEST_CASE("epoch permutation follows the documented Fisher-Yates", "[data]") {
  const uint64_t seed = 42, epoch = 3, n = 9;
  SplitMix64 g(mix64(seed ^ mix64(epoch)));
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = i;
  for (uint64_t i = n - 1; i >= 1; --i) {
    // below(i + 1) by rejection, written out here from the documentation.
    const uint64_t bound = i + 1, threshold = (0 - bound) % bound;
    uint64_t r;
    do r = g.next();
    while (r < threshold);
    std::swap(p[i], p[r % bound]);
  }
  CHECK(epoch_permutation(n, seed, epoch) == p);
}

TEST_CASE("loader without shuffle reads the documented window order", "[data]") {
  TempDir d;
  const auto shards = make_shards(d, {23, 9, 40});  // windows: 5, 2, 9 for T = 4 -> 16
  const int B = 2, T = 4;
  DataLoader l(d.file("s_*.bin"), B, T, false, 0, 10000);
  const auto exp = expected_windows(shards, T);
  REQUIRE(exp.size() == 16);
  CHECK(l.windows_per_epoch() == 16);
  CHECK(l.total_tokens() == 23 + 9 + 40);
  CHECK(l.shards().size() == 3);
  CHECK(epoch_windows(l, 8) == exp);
  CHECK(l.position() == LoaderPosition{1, 0});
  CHECK(epoch_windows(l, 8) == exp);  // the second epoch is the same
}

TEST_CASE("loader: an epoch that runs out mid-batch continues with the next epoch", "[data]") {
  TempDir d;
  const auto shards = make_shards(d, {13, 13});  // T = 3: 4 + 4 = 8 windows
  DataLoader l(d.file("s_*.bin"), 3, 3, false, 0, 10000);
  const auto exp = expected_windows(shards, 3);
  REQUIRE(exp.size() == 8);
  std::vector<Window> got = epoch_windows(l, 8);  // 24 windows = 3 epochs
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == exp[i % 8]);
  CHECK(l.position() == LoaderPosition{3, 0});
  DataLoader m(d.file("s_*.bin"), 3, 3, false, 0, 10000);
  batch(m);
  batch(m);
  batch(m);
  CHECK(m.position() == LoaderPosition{1, 1});  // 9 windows consumed = 1 epoch + 1
}

TEST_CASE("loader with shuffle: permutations, reproducible, seed-dependent", "[data]") {
  TempDir d;
  const auto shards = make_shards(d, {101, 57, 80});
  const int T = 5;
  const auto exp = expected_windows(shards, T);  // 20 + 11 + 15 = 46 windows
  const int W = static_cast<int>(exp.size());
  REQUIRE(W == 46);
  auto sorted = [](std::vector<Window> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  DataLoader a(d.file("s_*.bin"), 1, T, true, 7, 10000);
  const auto e0 = epoch_windows(a, W), e1 = epoch_windows(a, W);
  CHECK(sorted(e0) == sorted(exp));  // each epoch is a permutation of the global list
  CHECK(sorted(e1) == sorted(exp));
  CHECK(e0 != exp);
  CHECK(e0 != e1);  // epochs differ
  // The order is epoch_permutation of the global list.
  const auto perm = epoch_permutation(static_cast<uint64_t>(W), 7, 0);
  for (int i = 0; i < W; ++i) CHECK(e0[static_cast<size_t>(i)] == exp[perm[static_cast<size_t>(i)]]);

  DataLoader same(d.file("s_*.bin"), 1, T, true, 7, 10000);
  CHECK(epoch_windows(same, W) == e0);
  DataLoader other(d.file("s_*.bin"), 1, T, true, 8, 10000);
  CHECK(epoch_windows(other, W) != e0);
}

TEST_CASE("loader: seek to a saved position continues identically", "[data]") {
  TempDir d;
  make_shards(d, {70, 33});
  for (bool shuffle : {false, true}) {
    DataLoader a(d.file("s_*.bin"), 3, 4, shuffle, 99, 10000);
    for (int i = 0; i < 5; ++i) batch(a);
    const LoaderPosition p = a.position();
    CHECK(p == LoaderPosition{0, 15});       // position after k calls is divmod(k * B, W), W = 25
    const auto rest = epoch_windows(a, 20);  // crosses several epochs

    DataLoader b(d.file("s_*.bin"), 3, 4, shuffle, 99, 10000);
    b.seek(p);
    CHECK(epoch_windows(b, 20) == rest);
    CHECK(b.position() == a.position());
    b.reset();
    DataLoader c(d.file("s_*.bin"), 3, 4, shuffle, 99, 10000);
    CHECK(epoch_windows(b, 3) == epoch_windows(c, 3));
    CHECK_THROWS_AS(b.seek({0, 25}), UserError);
  }
}

TEST_CASE("loader state: restore continues, and a changed shard list is refused", "[data]") {
  TempDir d;
  make_shards(d, {50, 50});
  DataLoader a(d.file("s_*.bin"), 2, 4, true, 5, 10000);
  for (int i = 0; i < 7; ++i) batch(a);
  const nlohmann::json st = nlohmann::json::parse(a.state().dump());  // as stored in a checkpoint
  CHECK(st["epoch"] == 0);
  CHECK(st["cursor"] == 14);
  const auto rest = epoch_windows(a, 4);
  DataLoader b(d.file("s_*.bin"), 2, 4, true, 5, 10000);
  b.restore(st);
  CHECK(epoch_windows(b, 4) == rest);

  // Different settings.
  DataLoader t(d.file("s_*.bin"), 2, 5, true, 5, 10000);
  std::string msg = user_error([&] { t.restore(st); });
  CHECK(msg.find("T: checkpoint 4, now 5") != std::string::npos);
  DataLoader s(d.file("s_*.bin"), 2, 4, true, 6, 10000);
  CHECK(user_error([&] { s.restore(st); }).find("seed") != std::string::npos);

  // An added shard, and a shard whose contents changed length.
  make_shards(d, {50, 50, 30});
  DataLoader more(d.file("s_*.bin"), 2, 4, true, 5, 10000);
  msg = user_error([&] { more.restore(st); });
  CHECK(msg.find("shards: checkpoint 2 shard(s)") != std::string::npos);
  CHECK(msg.find("now 3 shard(s)") != std::string::npos);
  std::filesystem::remove(d.file("s_2.bin"));
  make_shards(d, {50, 51});
  DataLoader changed(d.file("s_*.bin"), 2, 4, true, 5, 10000);
  msg = user_error([&] { changed.restore(st); });
  CHECK(msg.find("first difference: shard 1") != std::string::npos);
  CHECK_THROWS_AS(changed.restore(nlohmann::json{{"epoch", 1}}), UserError);
}

TEST_CASE("loader: rank slices of a global batch add up to the world = 1 batch", "[data]") {
  TempDir d;
  make_shards(d, {90, 61});
  for (bool shuffle : {false, true}) {
    const int world = 3, B = 2, T = 4;
    DataLoader whole(d.file("s_*.bin"), world * B, T, shuffle, 11, 10000);
    std::vector<DataLoader> ranks;
    for (int r = 0; r < world; ++r) ranks.emplace_back(d.file("s_*.bin"), B, T, shuffle, 11, 10000, r, world);
    for (int step = 0; step < 10; ++step) {  // 37 windows per epoch: batches straddle epochs
      std::vector<Window> joined;
      for (auto& r : ranks) {
        auto b = batch(r);
        joined.insert(joined.end(), b.begin(), b.end());
      }
      CHECK(joined == batch(whole));
      CHECK(ranks[1].position() == whole.position());
    }
  }
}

TEST_CASE("loader errors: vocabulary, too little data, no match, bad arguments", "[data]") {
  TempDir d;
  write_shard(d.file("v_0.bin"), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 500, 1, 2, 3, 4}, 1000);
  DataLoader l(d.file("v_*.bin"), 1, 4, false, 0, 100);  // token 500 is at offset 12
  std::vector<int32_t> in(4), tg(4);
  l.next(in.data(), tg.data());
  l.next(in.data(), tg.data());                                               // window 1: offsets 4..8
  const std::string msg = user_error([&] { l.next(in.data(), tg.data()); });  // offsets 8..12
  CHECK(msg.find(d.file("v_0.bin")) != std::string::npos);
  CHECK(msg.find("token 500 at offset 12") != std::string::npos);
  CHECK(msg.find("[0, 100)") != std::string::npos);

  // 4 windows of T = 4 but a global batch of 2 * 3 = 6.
  const std::string few = user_error([&] { DataLoader x(d.file("v_*.bin"), 3, 4, false, 0, 1000, 0, 2); });
  CHECK(few.find("fewer than one micro-batch on every rank") != std::string::npos);
  const std::string none = user_error([&] { DataLoader x(d.file("nope_*.bin"), 1, 4, false, 0, 1000); });
  CHECK(none.find(d.file("nope_*.bin")) != std::string::npos);
  CHECK_THROWS_AS(DataLoader(d.file("v_*.bin"), 1, 4, false, 0, 1000, 2, 2), UserError);
  CHECK_THROWS_AS(DataLoader(d.file("v_*.bin"), 0, 4, false, 0, 1000), UserError);

  // A broken shard among good ones is named.
  test::write_bytes(d.file("v_1.bin"), test::raw_shard(20240520, 1, 9, {1, 2}, 2));
  const std::string bad = user_error([&] { DataLoader x(d.file("v_*.bin"), 1, 4, false, 0, 1000); });
  CHECK(bad.find(d.file("v_1.bin")) != std::string::npos);
}

TEST_CASE("loader state: windows per step is the global batch, and changes only when allowed", "[data][batch]") {
  TempDir d;
  make_shards(d, {50, 50});
  DataLoader a(d.file("s_*.bin"), 2, 4, true, 5, 10000);
  CHECK(a.state()["fingerprint"]["windows_per_step"] == 2);  // default: world x B
  a.set_windows_per_step(8);                                 // global batch 8 = micro-batch 2 x accumulation 4
  for (int i = 0; i < 4; ++i) batch(a);
  const nlohmann::json st = nlohmann::json::parse(a.state().dump());
  CHECK(st["fingerprint"]["windows_per_step"] == 8);
  const auto rest = epoch_windows(a, 4);
  // Another micro-batch with the same global batch resumes (the position counts windows).
  DataLoader four(d.file("s_*.bin"), 4, 4, true, 5, 10000);
  four.set_windows_per_step(8);
  four.restore(st);
  CHECK(four.state()["cursor"] == st["cursor"]);
  CHECK(four.state()["cursor"] == 8);
  // Another global batch: refused, unless the schedule change is allowed; then the same window.
  DataLoader other(d.file("s_*.bin"), 2, 4, true, 5, 10000);
  other.set_windows_per_step(16);
  CHECK_THAT(user_error([&] { other.restore(st); }), Catch::Contains("windows_per_step: checkpoint 8, now 16"));
  other.restore(st, /*allow_batch_change=*/true);
  CHECK(epoch_windows(other, 4) == rest);
}

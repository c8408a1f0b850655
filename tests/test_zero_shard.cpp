// ZeRO-1 in one process: the shard ranges (every trainable element exactly once, cut at tensor
// boundaries, balanced, consistent with the all-gather parts) for many rank counts, and a sharded
// AdamW (one rank: every piece held here, the sharded code path) giving the same bits as the
// unsharded one, in the optimizer and in a whole training run.
#include "cpu/cpu_backend.h"
#include "dist/dist.h"
#include "dist/grad_sync.h"
#include "support/synthetic_run.h"
#include "train/optimizer.h"
#include "train/trainer.h"
#include "train/zero_shard.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

using namespace am;

namespace {

// Dense and expert tensors interleaved, with a state tensor (not trained) between them, sizes
// from 1 element to several times a rank's share.
ParamTable mixed_table() {
  ParamTable t;
  t.add("embed", {7, 5}, Init::Normal, 0.02);
  t.add("norm", {5}, Init::Ones);
  t.add_expert("e0.w1", {3, 5}, Init::Normal, 0.02, 0);
  t.add_expert("e0.w2", {5, 3}, Init::Normal, 0.02, 0);
  t.add("down", {1}, Init::Normal, 0.02);
  t.add_state("bias", {4}, Init::Zeros);
  t.add_expert("e1.w1", {3, 5}, Init::Normal, 0.02, 1);
  t.add_state("bias2", {2}, Init::Zeros);
  t.add_expert("e1.w2", {1}, Init::Normal, 0.02, 1);
  t.add("head", {2, 9}, Init::Normal, 0.02);
  return t;
}

// The elements of `kind` in table order, as (tensor, element) -> position in the kind's flat space.
std::vector<std::pair<int, int64_t>> kind_elements(const ParamTable& t, ShardKind kind) {
  std::vector<std::pair<int, int64_t>> out;
  for (int i = 0; i < t.size(); ++i) {
    if (shard_kind(t.at(i)) != kind) continue;
    for (int64_t e = 0; e < t.at(i).numel(); ++e) out.emplace_back(i, e);
  }
  return out;
}

void check_ranges(const ParamTable& t, ShardKind kind, int ranks) {
  INFO((kind == ShardKind::Dense ? "dense" : "expert") << " over " << ranks << " ranks");
  const auto elements = kind_elements(t, kind);
  std::map<std::pair<int, int64_t>, int> owner;  // element -> the rank holding it
  std::vector<int64_t> sizes;
  int64_t next = 0;  // the ranges follow each other: rank r's starts where r-1's ended
  for (int r = 0; r < ranks; ++r) {
    const std::vector<ShardPiece> pieces = shard_pieces(t, kind, ranks, r);
    int64_t at = 0;
    for (const ShardPiece& p : pieces) {
      REQUIRE(shard_kind(t.at(p.tensor)) == kind);  // never a state tensor or the other kind
      REQUIRE(0 <= p.begin);
      REQUIRE(p.begin < p.end);                  // no empty pieces
      REQUIRE(p.end <= t.at(p.tensor).numel());  // inside its tensor
      CHECK(p.at == at);                         // back to back in the moment buffer
      at += p.numel();
      for (int64_t e = p.begin; e < p.end; ++e) {
        CHECK(owner.emplace(std::make_pair(p.tensor, e), r).second);  // held once
        REQUIRE(next < static_cast<int64_t>(elements.size()));
        CHECK(elements[static_cast<size_t>(next)] == std::make_pair(p.tensor, e));  // contiguous, in order
        ++next;
      }
    }
    sizes.push_back(at);
  }
  CHECK(next == static_cast<int64_t>(elements.size()));  // everything covered
  const auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end());
  CHECK(*hi - *lo <= 1);  // balanced

  // The all-gather parts of every run are exactly the pieces' elements, rank by rank.
  for (const GatherRun& run : gather_runs(t, ranks, ranks)) {
    if (run.kind != kind) continue;
    REQUIRE(static_cast<int>(run.counts.size()) == ranks);
    const int64_t start = t.at(run.first).offset;
    for (int i = run.first; i <= run.last; ++i) {
      REQUIRE(shard_kind(t.at(i)) == kind);
      for (int64_t e = 0; e < t.at(i).numel(); ++e) {
        const int64_t rel = t.at(i).offset + e - start;
        const int r = owner.at({i, e});
        CHECK(rel >= run.offsets[r]);
        CHECK(rel < run.offsets[r] + run.counts[r]);
      }
    }
    int64_t total = 0;
    for (int64_t c : run.counts) total += c;
    CHECK(total == t.at(run.last).offset + t.at(run.last).numel() - start);
  }
}

}  // namespace

TEST_CASE("ZeRO-1 shard ranges cover every trainable element once, cut at tensor boundaries, balanced", "[zero]") {
  const ParamTable t = mixed_table();
  for (int ranks : {1, 2, 3, 4, 7, 13, 40}) {  // 40 > the expert elements: some ranks hold nothing
    check_ranges(t, ShardKind::Dense, ranks);
    check_ranges(t, ShardKind::Expert, ranks);
  }
  // The runs split where the kind changes or a state tensor sits between.
  const std::vector<GatherRun> runs = gather_runs(t, 2, 2);
  std::vector<std::pair<int, int>> spans;
  for (const GatherRun& r : runs) spans.emplace_back(r.first, r.last);
  CHECK(spans == std::vector<std::pair<int, int>>{{0, 1}, {2, 3}, {4, 4}, {6, 6}, {8, 8}, {9, 9}});

  // A rank's shard: both kinds, piece_of points each tensor at its piece.
  const ZeroShard z = make_zero_shard(t, 3, 1, 2, 1);
  CHECK(z.dense_numel == static_cast<int64_t>(kind_elements(t, ShardKind::Dense).size() * 2 / 3) -
                             static_cast<int64_t>(kind_elements(t, ShardKind::Dense).size() / 3));
  CHECK(z.numel() == z.dense_numel + z.expert_numel);
  for (int i = 0; i < t.size(); ++i) {
    const int p = z.piece_of[static_cast<size_t>(i)];
    if (p < 0) continue;
    const auto& part = shard_kind(t.at(i)) == ShardKind::Dense ? z.dense : z.expert;
    CHECK(part.at(static_cast<size_t>(p)).tensor == i);
  }
  CHECK(z.piece_of[5] == -1);  // the state tensor has no moments
}

TEST_CASE("a sharded AdamW in one process gives the unsharded update's bits", "[zero]") {
  CpuBackend be(DType::F32, 1);
  TrainConfig tc;
  tc.lr = 0.01;
  tc.weight_decay = 0.1;
  tc.grad_clip = 0.5;
  ParamStore plain(be, mixed_table()), sharded(be, mixed_table());
  plain.init(3);
  sharded.init(3);
  const std::unique_ptr<Comm> single = make_single_comm();
  const Distributed layout(*single, 1);
  AdamW a(plain, tc), b(sharded, tc, &layout.context());
  REQUIRE(b.sharded());
  // moments only for the trainable elements (the table has 6 state elements)
  CHECK(b.state_bytes() == a.state_bytes() - 2 * 6 * sizeof(float));
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int step = 0; step < 3; ++step) {
    const Tensor ga = plain.all_grads(), gb = sharded.all_grads();
    for (int64_t i = 0; i < ga.numel(); ++i) ga.as<float>()[i] = gb.as<float>()[i] = nd(rng);
    a.update(step, tc.lr, a.grad_norm());
    b.update(step, tc.lr, b.grad_norm());
  }
  const Tensor va = plain.all_values(), vb = sharded.all_values();
  CHECK(std::memcmp(va.data, vb.data, va.nbytes()) == 0);
  for (AdamW::Moment which : {AdamW::Moment::M, AdamW::Moment::V}) {
    CHECK(b.gather_moment(which) == a.gather_moment(which));
  }
  CHECK(std::vector<float>(a.all_m().as<float>(), a.all_m().as<float>() + 3) !=
        std::vector<float>(3, 0.0f));  // the moments moved (the comparison above is not of zeros)

  // set_moment keeps the shard's part of each tensor; gathered back it is the same
  AdamW c(sharded, tc, &layout.context());
  const std::vector<char> m = a.gather_moment(AdamW::Moment::M);
  for (int i = 0; i < sharded.table().size(); ++i) {
    c.set_moment(i, AdamW::Moment::M, m.data() + sharded.table().at(i).offset * sizeof(float));
  }
  const std::vector<char> back = c.gather_moment(AdamW::Moment::M);
  CHECK(back == m);
  CHECK_THROWS(c.m(0));  // per-tensor views exist only unsharded
}

// update_device: one adamw_update_multi over every tensor (or the shard's pieces), the clip factor
// computed on the device from global_grad_norm_sq's slots; the same bits as update() with the norm
// taken on the host, sharded or not, clipping or not, and the flag names the same tensor.
TEST_CASE("AdamW update_device gives update's bits, sharded or not", "[zero]") {
  CpuBackend be(DType::F32, 1);
  for (const double clip : {0.5, 0.0}) {
    INFO("grad_clip " << clip);
    TrainConfig tc;
    tc.lr = 0.01;
    tc.weight_decay = 0.1;
    tc.grad_clip = clip;
    ParamStore host_a(be, mixed_table()), dev_a(be, mixed_table()), host_b(be, mixed_table()), dev_b(be, mixed_table());
    for (ParamStore* s : {&host_a, &dev_a, &host_b, &dev_b}) s->init(3);
    const std::unique_ptr<Comm> single = make_single_comm();
    const Distributed layout(*single, 1);
    AdamW a(host_a, tc), da(dev_a, tc), b(host_b, tc, &layout.context()), db(dev_b, tc, &layout.context());
    std::mt19937_64 rng(9);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    TensorBuf norm_sq(be, DType::F64, {2});
    for (int step = 0; step < 3; ++step) {
      std::vector<float> g(static_cast<size_t>(host_a.all_grads().numel()));
      for (float& x : g) x = nd(rng);
      for (ParamStore* s : {&host_a, &dev_a, &host_b, &dev_b}) be.upload(s->all_grads(), g.data());
      a.update(step, tc.lr, a.grad_norm());
      be.zero(norm_sq);
      global_grad_norm_sq(dev_a, nullptr, norm_sq, da.norm_spans());
      da.update_device(step, tc.lr, norm_sq);
      b.update(step, tc.lr, global_grad_norm(host_b, layout.context()));
      be.zero(norm_sq);
      global_grad_norm_sq(dev_b, &layout.context(), norm_sq, db.norm_spans());
      const std::vector<double> h = download_as_double(be, norm_sq);
      CHECK(std::sqrt(h[0] + h[1]) == global_grad_norm(host_b, layout.context()));
      db.update_device(step, tc.lr, norm_sq);
    }
    for (auto [x, y] : {std::pair{&host_a, &dev_a}, std::pair{&host_b, &dev_b}}) {
      const Tensor vx = x->all_values(), vy = y->all_values();
      CHECK(std::memcmp(vx.data, vy.data, vx.nbytes()) == 0);
    }
    CHECK(da.gather_moment(AdamW::Moment::V) == a.gather_moment(AdamW::Moment::V));
    CHECK(db.gather_moment(AdamW::Moment::M) == b.gather_moment(AdamW::Moment::M));
  }
}

TEST_CASE("dist.zero 1 in one process trains to the same bits as dist.zero 0", "[zero][train]") {
  test::TempDir dir("zero1");
  const std::string yaml = test::make_synthetic_run(dir, test::kSmallMoe);
  TrainOptions quiet;
  quiet.handle_signals = false;
  const TrainSummary a = train(load_config(yaml, {"run.name=a"}), quiet);
  const TrainSummary b = train(load_config(yaml, {"run.name=b", "dist.zero=1"}), quiet);
  CHECK(a.step_losses == b.step_losses);  // exact
  for (const char* file : {"/model.safetensors", "/optimizer.safetensors"}) {
    CHECK(test::file_bytes(a.last_checkpoint + file) == test::file_bytes(b.last_checkpoint + file));
  }
  CHECK(b.opt_state_bytes <= a.opt_state_bytes);  // this model trains every tensor: equal
  CHECK_THROWS_WITH(load_config(yaml, {"dist.zero=2"}), Catch::Contains("dist.zero") && Catch::Contains("[0, 1]"));
}

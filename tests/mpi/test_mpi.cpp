// Multi-process tests on the CPU backend with MPI (mpirun -np 2): expert parallelism equals
// plain data parallelism for every selector; data parallelism equals one process with the whole
// batch; ranks or experts with no tokens; checkpoints that resume on another layout; ZeRO-1
// (sharded AdamW moments) giving ZeRO-off's bits, its memory, its checkpoints on other layouts.
// Tolerance: fp32 runs whose reductions happen in another order: 1e-5 relative on losses; on
// weights after 6 AdamW steps 1e-5 absolute + 1e-3 relative (Adam's m / sqrt(v) turns ulp-level
// differences of near-zero gradients into differences of up to lr per step); fp64 layer checks:
// 1e-10 relative.
#include "cpu/cpu_backend.h"
#include "data/synthetic.h"
#include "dist/dist.h"
#include "dist/launch.h"
#include "io/checkpoint_dir.h"
#include "io/safetensors.h"
#include "moe/moe_layer.h"
#include "train/trainer.h"

#include <mpi.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

using namespace am;
namespace fs = std::filesystem;

namespace {

struct Job {
  MPI_Comm world_handle = MPI_COMM_WORLD, self_handle = MPI_COMM_SELF;
  std::unique_ptr<Comm> world = make_mpi_comm(&world_handle);
  std::unique_ptr<Comm> self = make_mpi_comm(&self_handle);
  int rank() const { return world->rank(); }
};

Job& job() {
  static Job j;
  return j;
}

// A directory both ranks use (rank 0 makes it, and removes it when the test ends), with synthetic
// data and a small config.
std::string make_shared_run_dir(const std::string& tag);

struct SharedDir {
  explicit SharedDir(const std::string& tag) : path(make_shared_run_dir(tag)) {}
  SharedDir(const SharedDir&) = delete;
  std::string path;
  ~SharedDir() {
    job().world->barrier();
    std::error_code ec;
    if (job().rank() == 0) fs::remove_all(path, ec);
  }
};

std::string make_shared_run_dir(const std::string& tag) {
  char path[512] = {0};
  if (job().rank() == 0) {
    std::string tmpl = (fs::temp_directory_path() / ("autonomoe-mpi-" + tag + "-XXXXXX")).string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    std::snprintf(path, sizeof path, "%s", tmpl.c_str());
    const std::string dir = path;
    write_synthetic_dataset(dir + "/data", "synth", 32, 20000, 4000, 1);
    std::ofstream(dir + "/run.yaml") << "run: {out_dir: " << dir << "/runs, threads: 1, backend: cpu}\n"
                                     << "data: {train: " << dir << "/data/synth_train_*.bin, val: " << dir
                                     << "/data/synth_val_*.bin, seq_len: 16}\n"
                                     << R"(model:
  vocab_size: 32
  d_model: 16
  n_layers: 2
  n_heads: 2
  max_seq_len: 16
  moe:
    n_experts: 4
    d_ffn: 24
    selector: {type: topk, k: 2}
    aux: {load_balance: 0.01, z_loss: 0.001}
train: {global_batch: 8, micro_batch_size: 4, max_steps: 6, lr: 0.01, warmup_steps: 2}
log: {every: 1}
eval: {every: 3, batches: 2}
checkpoint: {every: 3, keep_last: 0}
)";
  }
  job().world->broadcast(path, sizeof path, 0);
  return path;
}

TrainOptions on(Comm& comm, const std::string& resume = "") {
  TrainOptions o;
  o.handle_signals = false;
  o.world = &comm;
  o.resume = resume;
  return o;
}

void require_close(const std::vector<double>& a, const std::vector<double>& b, double rtol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i + 1 << ": " << a[i] << " vs " << b[i]);
    CHECK(std::abs(a[i] - b[i]) <= rtol * std::abs(b[i]));
  }
}

// Rank 0: every tensor of two model.safetensors files agrees.
void require_same_weights(const std::string& ckpt_a, const std::string& ckpt_b) {
  if (job().rank() != 0) return;
  SafetensorsFile a(ckpt_a + "/model.safetensors"), b(ckpt_b + "/model.safetensors");
  REQUIRE(a.names() == b.names());
  for (const std::string& name : a.names()) {
    const auto& ia = a.info(name);
    const float* x = static_cast<const float*>(a.data(name));
    const float* y = static_cast<const float*>(b.data(name));
    for (size_t i = 0; i < ia.bytes / 4; ++i) {
      INFO(name << "[" << i << "]: " << x[i] << " vs " << y[i]);
      REQUIRE(std::abs(x[i] - y[i]) <= 1e-5 + 1e-3 * std::abs(y[i]));
    }
  }
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Rank 0: two checkpoints hold the same bits (weights and AdamW moments).
void require_identical_checkpoints(const std::string& ckpt_a, const std::string& ckpt_b) {
  if (job().rank() != 0) return;
  for (const char* file : {"/model.safetensors", "/optimizer.safetensors"}) {
    INFO(ckpt_a << file << " vs " << ckpt_b << file);
    CHECK(file_bytes(ckpt_a + file) == file_bytes(ckpt_b + file));
  }
}

}  // namespace

TEST_CASE("expert parallelism (ep=2) equals data parallelism (ep=1) for every selector", "[mpi]") {
  const SharedDir shared("ep");
  const std::string& dir = shared.path;
  const std::vector<std::pair<std::string, std::vector<std::string>>> selectors = {
      {"topk", {}},
      {"topk-capacity", {"model.moe.selector.capacity_factor=0.8"}},
      {"topp", {"model.moe.selector.type=topp", "model.moe.aux.entropy=0.01"}},
      {"expert-choice",
       {"model.moe.selector.type=expert_choice", "model.moe.selector.capacity_factor=1.0",
        "model.moe.aux.load_balance=0"}},
      {"expert-choice-seq",
       {"model.moe.selector.type=expert_choice", "model.moe.selector.capacity_factor=2.0",
        "model.moe.selector.group=sequence", "model.moe.aux.load_balance=0"}},
      {"null",
       {"model.moe.selector.n_null=2", "model.moe.selector.k=3", "model.moe.aux.load_balance=0",
        "model.moe.aux.null_load_balance=0.01"}},
      {"aoe-bias",
       {"model.moe.expert.type=factorized", "model.moe.expert.d_low=4", "model.moe.scorer.type=act_norm",
        "model.moe.aux.z_loss=0", "model.moe.aux.bias_update_rate=0.01"}},
      {"factorized-router", {"model.moe.expert.type=factorized", "model.moe.expert.d_low=4"}},
  };
  for (const auto& [name, sets] : selectors) {
    SECTION(name) {
      std::vector<std::string> ep1 = sets, ep2 = sets;
      ep1.push_back("run.name=" + name + "-ep1");
      ep2.push_back("run.name=" + name + "-ep2");
      ep2.push_back("dist.ep=2");
      const TrainSummary a = train(load_config(dir + "/run.yaml", ep1), on(*job().world));
      const TrainSummary b = train(load_config(dir + "/run.yaml", ep2), on(*job().world));
      require_close(b.step_losses, a.step_losses, 1e-5);
      CHECK(std::abs(b.final_val_loss - a.final_val_loss) <= 1e-5 * a.final_val_loss);
      require_same_weights(b.last_checkpoint, a.last_checkpoint);
    }
  }
}

TEST_CASE("data parallelism over 2 ranks with batch B equals one process with 2B", "[mpi]") {
  const SharedDir shared("dp");
  const std::string& dir = shared.path;
  const std::vector<std::string> no_aux = {"model.moe.aux.load_balance=0", "model.moe.aux.z_loss=0"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), no_aux.begin(), no_aux.end());
    return v;
  };
  const TrainSummary dp = train(load_config(dir + "/run.yaml", with({"run.name=dp2", "dist.ep=2"})), on(*job().world));
  if (job().rank() == 0) {
    const TrainSummary one =
        train(load_config(dir + "/run.yaml", with({"run.name=one", "train.micro_batch_size=8"})), on(*job().self));
    require_close(dp.step_losses, one.step_losses, 1e-5);
    require_same_weights(dp.last_checkpoint, one.last_checkpoint);
  }
  job().world->barrier();
}

TEST_CASE("the global batch is the same on 2 ranks with accumulation as on one process", "[mpi][batch]") {
  // train.global_batch 8: 2 ranks x micro-batch 2 x accumulation 2 (ep 2) = one process x 8 x 1
  // = one process x 4 x 2 (train/batch.h); no auxiliary losses (they are per micro-batch).
  const SharedDir shared("global_batch");
  const std::string& dir = shared.path;
  const std::vector<std::string> no_aux = {"model.moe.aux.load_balance=0", "model.moe.aux.z_loss=0"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), no_aux.begin(), no_aux.end());
    return v;
  };
  const TrainSummary two =
      train(load_config(dir + "/run.yaml", with({"run.name=two", "dist.ep=2", "train.micro_batch_size=2"})),
            on(*job().world));
  if (job().rank() == 0) {
    for (const std::string micro : {"8", "4"}) {
      INFO("micro-batch " << micro);
      const TrainSummary one =
          train(load_config(dir + "/run.yaml", with({"run.name=one-" + micro, "train.micro_batch_size=" + micro})),
                on(*job().self));
      require_close(two.step_losses, one.step_losses, 1e-5);
      require_same_weights(two.last_checkpoint, one.last_checkpoint);
    }
  }
  job().world->barrier();
}

TEST_CASE("a checkpoint resumes on another layout: 2 ranks (ep=2) -> 1 and 1 -> 2", "[mpi][resume]") {
  const SharedDir shared("reshard");
  const std::string& dir = shared.path;
  const std::vector<std::string> base = {"model.moe.aux.load_balance=0", "model.moe.aux.z_loss=0"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), base.begin(), base.end());
    return v;
  };
  // 2 -> 1: the 2-rank run's step-3 checkpoint continued by one process with the same global batch
  const TrainSummary two = train(load_config(dir + "/run.yaml", with({"run.name=two", "dist.ep=2"})), on(*job().world));
  const std::string two_ckpt3 = dir + "/runs/two/checkpoints/step_00000003";
  std::vector<double> one_then;
  std::string one_ckpt3;
  if (job().rank() == 0) {
    const TrainSummary cont =
        train(load_config(dir + "/run.yaml", with({"run.name=two-to-one", "train.micro_batch_size=8"})),
              on(*job().self, two_ckpt3));
    REQUIRE(cont.start_step == 3);
    require_close(cont.step_losses, {two.step_losses.begin() + 3, two.step_losses.end()}, 1e-5);
    require_same_weights(cont.last_checkpoint, two.last_checkpoint);
    // the 1-process run whose checkpoint the next part resumes on 2 ranks
    const TrainSummary one =
        train(load_config(dir + "/run.yaml", with({"run.name=one", "train.micro_batch_size=8"})), on(*job().self));
    one_then = one.step_losses;
  }
  job().world->barrier();
  // 1 -> 2
  const TrainSummary cont2 = train(load_config(dir + "/run.yaml", with({"run.name=one-to-two", "dist.ep=2"})),
                                   on(*job().world, dir + "/runs/one/checkpoints/step_00000003"));
  REQUIRE(cont2.start_step == 3);
  if (job().rank() == 0) {
    require_close(cont2.step_losses, {one_then.begin() + 3, one_then.end()}, 1e-5);
    require_same_weights(cont2.last_checkpoint, dir + "/runs/one/checkpoints/step_00000006");
  }
  job().world->barrier();
}

TEST_CASE("all_gather: parts of different sizes, an empty part, the rest untouched", "[mpi][zero]") {
  const int r = job().rank();
  // rank 0's part is [1, 6), rank 1's [7, 9); elements 0, 6 and 9 belong to nobody
  auto check_parts = [&](const std::vector<int64_t>& counts, const std::vector<int64_t>& offsets) {
    std::vector<double> x(10, -1.0);
    for (int64_t i = 0; i < counts[r]; ++i) x[offsets[r] + i] = 100.0 * r + i;
    job().world->all_gather(Tensor(x.data(), DType::F64, {10}), counts, offsets);
    std::vector<double> want(10, -1.0);
    for (int q = 0; q < 2; ++q) {
      for (int64_t i = 0; i < counts[q]; ++i) want[offsets[q] + i] = 100.0 * q + i;
    }
    CHECK(x == want);
  };
  check_parts({5, 2}, {1, 7});
  check_parts({0, 3}, {0, 2});  // rank 0 sends nothing
  std::vector<float> f = {static_cast<float>(r), -1.0f};
  job().world->all_gather(Tensor(f.data(), DType::F32, {2}), {1, 0}, {0, 1});
  CHECK(f == std::vector<float>{0.0f, -1.0f});
}

TEST_CASE("ZeRO-1 gives ZeRO-off's bits with half the moments per rank", "[mpi][zero]") {
  const SharedDir shared("zero");
  const std::string& dir = shared.path;
  const std::vector<std::pair<std::string, std::vector<std::string>>> layouts = {
      {"dp", {}},
      {"ep2", {"dist.ep=2"}},
      {"aoe-bias",
       {"model.moe.expert.type=factorized", "model.moe.expert.d_low=4", "model.moe.scorer.type=act_norm",
        "model.moe.aux.z_loss=0", "model.moe.aux.bias_update_rate=0.01"}},
      {"fp64-accum", {"run.precision=fp64", "train.micro_batch_size=2"}},
  };
  for (const auto& [name, sets] : layouts) {
    SECTION(name) {
      std::vector<std::string> off = sets, on1 = sets;
      off.push_back("run.name=" + name + "-z0");
      on1.push_back("run.name=" + name + "-z1");
      on1.push_back("dist.zero=1");
      const TrainSummary a = train(load_config(dir + "/run.yaml", off), on(*job().world));
      const TrainSummary b = train(load_config(dir + "/run.yaml", on1), on(*job().world));
      CHECK(b.step_losses == a.step_losses);  // exact
      CHECK(b.final_val_loss == a.final_val_loss);
      require_identical_checkpoints(b.last_checkpoint, a.last_checkpoint);
      // Memory: with ep 1 each rank holds about half the moments (dense and experts both shared by
      // 2 ranks); with ep 2 the dense half only (each rank's experts are its own already).
      const double mine = static_cast<double>(b.opt_state_bytes), unsharded = static_cast<double>(a.opt_state_bytes);
      INFO("rank " << job().rank() << ": " << mine << " of " << unsharded << " bytes");
      const double both = job().world->all_reduce_sum(mine);
      if (name == "ep2") {
        CHECK(mine < 0.9 * unsharded);
      } else {
        CHECK(mine < 0.6 * unsharded);
        CHECK(mine > 0.4 * unsharded);
        CHECK(both <= unsharded);  // every trainable element's moments on one rank only
      }
    }
  }
}

TEST_CASE("ZeRO-1 checkpoints resume with ZeRO off, on 1 process, and 1 -> 2 ranks with ZeRO-1",
          "[mpi][zero][resume]") {
  const SharedDir shared("zero-resume");
  const std::string& dir = shared.path;
  const std::vector<std::string> base = {"model.moe.aux.load_balance=0", "model.moe.aux.z_loss=0"};
  auto with = [&](std::vector<std::string> v) {
    v.insert(v.end(), base.begin(), base.end());
    return v;
  };
  auto ckpt = [&](const std::string& run, int step) {
    return fmt::format("{}/runs/{}/checkpoints/step_{:08d}", dir, run, step);
  };
  // 2 ranks (ep 2) with ZeRO-1, continued by the same layout with ZeRO off: bit for bit
  const TrainSummary two =
      train(load_config(dir + "/run.yaml", with({"run.name=two", "dist.ep=2", "dist.zero=1"})), on(*job().world));
  const TrainSummary off =
      train(load_config(dir + "/run.yaml", with({"run.name=two-off", "dist.ep=2"})), on(*job().world, ckpt("two", 3)));
  REQUIRE(off.start_step == 3);
  CHECK(off.step_losses == std::vector<double>(two.step_losses.begin() + 3, two.step_losses.end()));
  require_identical_checkpoints(off.last_checkpoint, two.last_checkpoint);
  // 2 -> 1 process (ZeRO off, the same global batch): as the uninterrupted 2-rank run
  std::vector<double> one_losses;
  if (job().rank() == 0) {
    const TrainSummary cont =
        train(load_config(dir + "/run.yaml", with({"run.name=two-to-one", "train.micro_batch_size=8"})),
              on(*job().self, ckpt("two", 3)));
    REQUIRE(cont.start_step == 3);
    require_close(cont.step_losses, {two.step_losses.begin() + 3, two.step_losses.end()}, 1e-5);
    require_same_weights(cont.last_checkpoint, two.last_checkpoint);
    // one process, continued by one process with ZeRO-1 (the sharded code path): bit for bit
    const TrainSummary one =
        train(load_config(dir + "/run.yaml", with({"run.name=one", "train.micro_batch_size=8"})), on(*job().self));
    one_losses = one.step_losses;
    const TrainSummary one_z1 =
        train(load_config(dir + "/run.yaml", with({"run.name=one-z1", "train.micro_batch_size=8", "dist.zero=1"})),
              on(*job().self, ckpt("one", 3)));
    CHECK(one_z1.step_losses == std::vector<double>(one.step_losses.begin() + 3, one.step_losses.end()));
    require_identical_checkpoints(one_z1.last_checkpoint, one.last_checkpoint);
  }
  job().world->barrier();
  // 1 -> 2 ranks (ep 1, so dense tensors and experts are both sharded) with ZeRO-1: as the
  // uninterrupted 1-process run, and bit for bit as the same resume with ZeRO off
  const TrainSummary z1 = train(load_config(dir + "/run.yaml", with({"run.name=one-to-two", "dist.zero=1"})),
                                on(*job().world, ckpt("one", 3)));
  const TrainSummary z0 =
      train(load_config(dir + "/run.yaml", with({"run.name=one-to-two-off"})), on(*job().world, ckpt("one", 3)));
  REQUIRE(z1.start_step == 3);
  CHECK(z1.step_losses == z0.step_losses);
  require_identical_checkpoints(z1.last_checkpoint, z0.last_checkpoint);
  if (job().rank() == 0) {
    require_close(z1.step_losses, {one_losses.begin() + 3, one_losses.end()}, 1e-5);
    require_same_weights(z1.last_checkpoint, ckpt("one", 6));
  }
  job().world->barrier();
}

namespace {

// One MoE layer (fp64, top-1 over 4 experts) whose router sends every token of rank r to
// expert target[r]; returns y, dh and the gradient of each expert's w2 (global expert index).
struct LayerRun {
  std::vector<double> y, dh;
  std::vector<std::vector<double>> w2_grad;  // [expert] (empty when not held here)
};

LayerRun run_layer(const DistContext* dist, int target) {
  ModelConfig cfg;
  cfg.d_model = 6;
  cfg.n_layers = 1;
  cfg.init_std = 0.3;
  cfg.moe.n_experts = 4;
  cfg.moe.d_ffn = 5;
  cfg.moe.selector.k = 1;
  cfg.moe.aux.load_balance = 0.1;
  const int64_t N = 5, d = 6;
  CpuBackend be(DType::F64, 1);
  MoeLayer layer(be, cfg, 0, 0, dist);
  ParamTable table;
  layer.register_params(table);
  ParamStore store(be, std::move(table));
  store.init(9);
  layer.bind(store);
  layer.allocate(N);
  double* w = store.value(store.table().index("model.layers.0.block_sparse_moe.gate.weight")).as<double>();
  for (int i = 0; i < 4 * d; ++i) w[i] = 0.0;
  w[target * d] = 50.0;  // score of `target` = 50 * h[0] > 0 = every other score
  std::mt19937_64 rng(100 + job().rank());
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> h(N * d), dy(N * d);
  for (double& x : h) x = nd(rng);
  for (int64_t t = 0; t < N; ++t) h[t * d] = 1.0 + std::abs(h[t * d]);
  for (double& x : dy) x = nd(rng);
  LayerRun r;
  r.y.resize(N * d);
  r.dh.assign(N * d, 0.0);
  layer.forward(Tensor(h.data(), DType::F64, {N, d}), Tensor(r.y.data(), DType::F64, {N, d}));
  store.zero_grads();
  layer.backward(Tensor(h.data(), DType::F64, {N, d}), Tensor(dy.data(), DType::F64, {N, d}),
                 Tensor(r.dh.data(), DType::F64, {N, d}), 1.0);
  r.w2_grad.resize(4);
  for (int e = 0; e < 4; ++e) {
    const std::string name = "model.layers.0.block_sparse_moe.experts." + std::to_string(e) + ".w2.weight";
    if (!store.table().has(name)) continue;
    const Tensor g = store.grad(store.table().index(name));
    r.w2_grad[e].assign(g.as<double>(), g.as<double>() + g.numel());
  }
  return r;
}

void check_layer(int target_rank0, int target_rank1) {
  const int target = job().rank() == 0 ? target_rank0 : target_rank1;
  const Distributed ep2(*job().world, 2);
  const LayerRun par = run_layer(&ep2.context(), target);
  const LayerRun ref = run_layer(nullptr, target);  // this rank alone, every expert held
  for (size_t i = 0; i < ref.y.size(); ++i) REQUIRE(par.y[i] == Approx(ref.y[i]).epsilon(1e-10).margin(1e-12));
  for (size_t i = 0; i < ref.dh.size(); ++i) REQUIRE(par.dh[i] == Approx(ref.dh[i]).epsilon(1e-10).margin(1e-12));
  // An expert's gradient on its owner = the sum of both ranks' single-process gradients.
  for (int e = 0; e < 4; ++e) {
    std::vector<double> sum = ref.w2_grad[e];
    job().world->all_reduce_sum(Tensor(sum.data(), DType::F64, {static_cast<int64_t>(sum.size())}));
    if (par.w2_grad[e].empty()) continue;  // held by the other rank
    for (size_t i = 0; i < sum.size(); ++i) REQUIRE(par.w2_grad[e][i] == Approx(sum[i]).epsilon(1e-10).margin(1e-12));
  }
}

}  // namespace

TEST_CASE("expert parallelism: every token to one expert, and a rank that receives no tokens", "[mpi]") {
  SECTION("all tokens of both ranks to expert 0: rank 1 receives nothing") { check_layer(0, 0); }
  SECTION("both ranks' tokens to rank 1's experts: rank 0 receives nothing") { check_layer(3, 2); }
  SECTION("each rank's tokens to the other rank's experts") { check_layer(2, 1); }
}

namespace {

// The largest relative difference between two runs' step losses.
double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::abs(b[i]));
  return worst;
}

}  // namespace

TEST_CASE("balance_scope data_parallel: 2 ranks (ep 2) train as 1 process with both micro-batches", "[mpi][balance]") {
  const SharedDir shared("balance");
  const std::string& dir = shared.path;
  auto with = [&](const std::string& scope, std::vector<std::string> v) {
    v.push_back("model.moe.aux.balance_scope=" + scope);
    v.push_back("model.moe.aux.load_balance=0.1");  // strong enough for the scopes to differ visibly
    return v;
  };
  const TrainSummary two =
      train(load_config(dir + "/run.yaml", with("data_parallel", {"run.name=two", "dist.ep=2"})), on(*job().world));
  const TrainSummary two_mb =
      train(load_config(dir + "/run.yaml", with("micro_batch", {"run.name=two-mb", "dist.ep=2"})), on(*job().world));
  if (job().rank() == 0) {
    // one process, micro-batch 8 = both ranks' micro-batches (the loader gives rank r windows
    // [4r, 4r + 4) of each global batch of 8): the same statistics, so the same run
    const TrainSummary one =
        train(load_config(dir + "/run.yaml", with("data_parallel", {"run.name=one", "train.micro_batch_size=8"})),
              on(*job().self));
    require_close(two.step_losses, one.step_losses, 1e-5);
    require_same_weights(two.last_checkpoint, one.last_checkpoint);
    // the 2-rank checkpoint continued by one process: as the uninterrupted 2-rank run
    const TrainSummary cont = train(
        load_config(dir + "/run.yaml", with("data_parallel", {"run.name=two-to-one", "train.micro_batch_size=8"})),
        on(*job().self, dir + "/runs/two/checkpoints/step_00000003"));
    REQUIRE(cont.start_step == 3);
    require_close(cont.step_losses, {two.step_losses.begin() + 3, two.step_losses.end()}, 1e-5);
    require_same_weights(cont.last_checkpoint, two.last_checkpoint);
    // with micro_batch scope the same two layouts differ (each rank balances its own half)
    const TrainSummary one_mb =
        train(load_config(dir + "/run.yaml", with("micro_batch", {"run.name=one-mb", "train.micro_batch_size=8"})),
              on(*job().self));
    INFO("micro_batch scope, 2 ranks vs 1 process: losses differ by up to "
         << max_rel_diff(two_mb.step_losses, one_mb.step_losses)
         << " relative; data_parallel: " << max_rel_diff(two.step_losses, one.step_losses));
    CHECK(max_rel_diff(two_mb.step_losses, one_mb.step_losses) > 1e-5);
  }
  job().world->barrier();
}

// autonomoe-bench: training throughput of a config, measured (not a test).
//
//   autonomoe-bench --config configs/paper/t2_r10_aoe_dlow256_aux.yaml --set run.backend=cuda
//       [--steps 20] [--warmup 3] [--peak-tflops 989] [--json out.json] [--set key=value]...
//
// Builds the config's model on its backend with random tokens (no data needed), runs `warmup`
// untimed and `steps` timed optimizer steps (forward, backward, clip, AdamW: exactly what training
// does), and prints the median step time, tokens/s, model FLOPs utilisation and peak memory.
//
// FLOPs per token (training, forward + backward = 3x forward): train_flops_per_token
// (src/train/flops.h, the one the training log's MFU uses; docs/benchmarks.md states it):
//   6 * (active parameters - V * d)  +  6 * L * T * H * hd
// MFU = FLOPs per token * tokens/s / peak FLOP/s (default peak: H100 SXM dense BF16, 989 TFLOP/s;
// pass --peak-tflops for another device or precision).
#include "cli/args.h"
#include "cli/guarded.h"
#include "config/config.h"
#include "core/backend.h"
#include "core/device_counts.h"
#include "core/error.h"
#include "core/rng.h"
#include "cpu/threads.h"
#include "model/model_info.h"
#include "model/transformer.h"
#include "params/params.h"
#include "train/backend_check.h"
#include "train/flops.h"
#include "train/optimizer.h"
#include "train/step.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

const std::vector<am::FlagSpec> kFlags = {
    {"config", true, false, "config file (required)"},
    {"set", true, false, "key=value override (repeatable)"},
    {"steps", true, false, "timed steps (default 20)"},
    {"warmup", true, false, "untimed steps first (default 3)"},
    {"peak-tflops", true, false, "the device's peak for MFU (default 989: H100 SXM dense bf16)"},
    {"json", true, false, "also write the results here"},
    {"memory", false, false, "only build the model and print its memory: parameters and activations per token"},
    {"help", false, false, "this help"},
};

struct Options {
  std::string config, json;
  std::vector<std::string> sets;
  int steps = 20, warmup = 3;
  double peak_tflops = 989.0;
  bool memory = false;
};

Options parse(int argc, char** argv) {
  const am::Args args("autonomoe-bench", kFlags, argc - 1, argv + 1);
  if (args.has("help")) {
    std::fputs(am::usage_of("autonomoe-bench",
                            "--config FILE [--set key=value]... [--steps N] [--warmup N] "
                            "[--peak-tflops X] [--json FILE] [--memory]",
                            kFlags)
                   .c_str(),
               stdout);
    std::exit(0);
  }
  Options o;
  o.config = args.require("config");
  o.sets = args.sets();
  o.steps = args.integer("steps", o.steps, 1);
  o.warmup = args.integer("warmup", o.warmup, 0);
  o.peak_tflops = args.number("peak-tflops", o.peak_tflops);
  o.memory = args.has("memory");
  o.json = args.get("json").value_or("");
  return o;
}

double peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;
}

unsigned long long ull(uint64_t x) { return static_cast<unsigned long long>(x); }

// A normal tensor's initial values as init_param_host draws them (core/rng.h), on every core.
void draw_normal(const am::ParamSpec& spec, uint64_t seed, double* out) {
  const uint64_t key = am::stream_key(seed, spec.name);
  const int64_t n = spec.numel();
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; ++j) out[j] = spec.std * am::normal01(key, static_cast<uint64_t>(j));
}

// ParamStore::init's model, drawn on every core: init_param_host draws one normal after another
// (~30 ns each, some 20 s for the 732M models: longer than the timed steps on a GPU). The draws
// are counter-based, so the split gives the same bits; the smallest normal tensor is checked
// against init_param_host itself, so that this cannot drift from the model training starts from.
void init_on_every_core(am::Backend& be, am::ParamStore& store, uint64_t seed) {
  const am::ParamTable& table = store.table();
  std::vector<double> host;
  int smallest = -1;
  for (int i = 0; i < table.size(); ++i) {
    const am::ParamSpec& spec = table.at(i);
    host.resize(static_cast<size_t>(spec.numel()));
    if (spec.init == am::Init::Normal) {
      draw_normal(spec, seed, host.data());
      if (smallest < 0 || spec.numel() < table.at(smallest).numel()) smallest = i;
    } else {
      am::init_param_host(spec, seed, host.data());
    }
    am::upload_from_double(be, store.value(i), host);
  }
  if (smallest >= 0) {
    const am::ParamSpec& spec = table.at(smallest);
    std::vector<double> ours(static_cast<size_t>(spec.numel())), theirs(ours.size());
    draw_normal(spec, seed, ours.data());
    am::init_param_host(spec, seed, theirs.data());
    AM_CHECK(ours == theirs, "autonomoe-bench: the initial values of {} differ from init_param_host's", spec.name);
  }
}

// What the model allocates at construction (nothing is initialised or run): the parameters and
// their gradients, and everything else it holds for one micro-batch of `tokens` tokens: the
// activations the forward saves for the backward, the backward's scratch and the MoE layers'
// routing buffers (sized for the most assignments a micro-batch can make). Lazily made buffers
// (the bf16 weight copy: 2 bytes per parameter; the optimizer's moments) are not included.
void print_memory(am::Backend& be, am::Transformer& model, int64_t tokens, const std::string& precision) {
  const double params = static_cast<double>(model.store().all_values().nbytes() + model.store().all_grads().nbytes());
  const double acts = static_cast<double>(be.bytes_in_use()) - params;
  std::printf(
      "memory (%s, %s): parameters + gradients %.3f GiB | activations for %lld tokens %.3f GiB = %.0f bytes "
      "per token\n",
      precision.c_str(), am::dtype_name(be.act_dtype()), params / 1073741824.0, static_cast<long long>(tokens),
      acts / 1073741824.0, acts / static_cast<double>(tokens));
}

}  // namespace

int main(int argc, char** argv) {
  am::reexec_with_passive_omp_wait(argv);  // the CPU steps timed as autonomoe train runs them
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  return am::run_guarded([&] {
    const Options o = parse(argc, argv);
    const am::Config cfg = am::load_config(o.config, o.sets);
    const am::ModelConfig& m = cfg.model;
    const int B = cfg.train.micro_batch_size, T = cfg.data.seq_len;
    auto be = am::make_checked_backend(cfg.run);
    am::Transformer model(*be, m, B, T);
    if (o.memory) {
      print_memory(*be, model, B * T, cfg.run.precision);
      return 0;
    }
    init_on_every_core(*be, model.store(), cfg.run.seed);
    am::AdamW opt(model.store(), cfg.train);

    std::mt19937_64 rng(cfg.run.seed);
    std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.vocab_size));
      targets[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.vocab_size));
    }
    std::vector<double> ms;
    std::optional<am::DeviceCounts> counts;  // of the last step (the simulator counts; a GPU does not)
    for (int s = 0; s < o.warmup + o.steps; ++s) {
      be->synchronize();
      am::reset_device_counts();
      const auto t0 = std::chrono::steady_clock::now();
      am::train_step(model, opt, cfg.train, s, /*accum=*/1, [&](int32_t* in, int32_t* tg) {
        std::copy(tokens.begin(), tokens.end(), in);
        std::copy(targets.begin(), targets.end(), tg);
      });
      counts = am::device_counts();  // before the benchmark's own synchronisation
      be->synchronize();
      const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (s >= o.warmup) ms.push_back(dt);
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median_ms = sorted[sorted.size() / 2];
    const double tokens_per_s = static_cast<double>(B) * T / (median_ms / 1000.0);

    const am::ParamCounts pc = am::count_params(m);
    const double flops_per_token = am::train_flops_per_token(m, T);
    const double mfu = am::mfu(flops_per_token, tokens_per_s, o.peak_tflops, 1);
    const double peak_mem = be->name() == "cpu" ? peak_rss_bytes() : static_cast<double>(be->peak_bytes());

    std::printf(
        "%s | %s | B=%d T=%d | median step %.2f ms (%d steps, %d warm-up) | %.0f tokens/s | "
        "%.3g GFLOP/token | MFU %.2f%% of %.0f TFLOP/s | peak memory %.2f GiB\n",
        o.config.c_str(), be->describe().c_str(), B, T, median_ms, o.steps, o.warmup, tokens_per_s,
        flops_per_token / 1e9, 100.0 * mfu, o.peak_tflops, peak_mem / 1073741824.0);
    if (counts) {
      std::printf(
          "per step (counted by the CUDA simulator): %llu launches (%llu kernels), %llu host "
          "synchronisations (%llu synchronous copies, %llu cudaMalloc, %llu cudaFree, %llu stream, %llu event, "
          "%llu device), %llu copies to the device, %llu to the host, peak device memory %.2f MiB\n",
          ull(counts->launches), ull(counts->kernel_launches), ull(counts->host_syncs()), ull(counts->sync_memcpy),
          ull(counts->sync_malloc), ull(counts->sync_free), ull(counts->sync_stream), ull(counts->sync_event),
          ull(counts->sync_device), ull(counts->memcpy_h2d), ull(counts->memcpy_d2h),
          counts->peak_device_bytes / 1048576.0);
    }
    if (!o.json.empty()) {
      nlohmann::json j = {{"config", o.config},
                          {"sets", o.sets},
                          {"backend", be->describe()},
                          {"micro_batch", B},
                          {"seq_len", T},
                          {"steps", o.steps},
                          {"warmup", o.warmup},
                          {"step_ms", ms},
                          {"median_step_ms", median_ms},
                          {"tokens_per_s", tokens_per_s},
                          {"params_total", pc.total},
                          {"params_active", pc.active},
                          {"flops_per_token", flops_per_token},
                          {"peak_tflops", o.peak_tflops},
                          {"mfu", mfu},
                          {"peak_memory_bytes", peak_mem}};
      if (counts) {
        j["counted_by"] = "cuda simulator";
        j["launches_per_step"] = counts->launches;
        j["kernel_launches_per_step"] = counts->kernel_launches;
        j["host_syncs_per_step"] = counts->host_syncs();
        j["host_syncs_by_kind"] = {{"synchronous_memcpy", counts->sync_memcpy},
                                   {"cuda_malloc", counts->sync_malloc},
                                   {"cuda_free", counts->sync_free},
                                   {"stream_sync", counts->sync_stream},
                                   {"event_sync", counts->sync_event},
                                   {"device_sync", counts->sync_device}};
        j["memcpy_per_step"] = {{"host_to_device", counts->memcpy_h2d},
                                {"device_to_host", counts->memcpy_d2h},
                                {"device_to_device", counts->memcpy_d2d},
                                {"memset", counts->memsets}};
        j["peak_device_bytes"] = counts->peak_device_bytes;
      }
      std::ofstream(o.json) << j.dump(2) << "\n";
    }
    return 0;
  });
}

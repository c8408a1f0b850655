// autonomoe-bench: training throughput of a config, measured (not a test).
//
//   autonomoe-bench --config configs/paper/t2_r10_aoe_dlow256_aux.yaml --set run.backend=cuda
//       [--steps 20] [--warmup 3] [--peak-tflops 989] [--json out.json] [--set key=value]...
//
// Builds the config's model on its backend with random tokens (no data needed), runs `warmup`
// untimed and `steps` timed optimizer steps (forward, backward, clip, AdamW: exactly what training
// does), and prints the median step time, tokens/s, model FLOPs utilisation and peak memory.
//
// FLOPs per token (training, forward + backward = 3x forward), stated once here and in
// docs/benchmarks.md:
//   6 * P_matmul  +  6 * L * T * H * hd
// P_matmul: the weights a token multiplies with: active parameters minus the embedding lookup
// (the LM head is included; norms are negligible and included). The second term is causal
// attention: QK^T and PV are 2 * T * H * hd multiply-adds each per token, halved by the mask,
// times 3 for forward + backward. MFU = FLOPs per token * tokens/s / peak FLOP/s (default peak:
// H100 SXM dense BF16, 989 TFLOP/s; pass --peak-tflops for another device or precision).
#include "config/config.h"
#include "core/backend.h"
#include "model/model_info.h"
#include "model/transformer.h"
#include "train/backend_check.h"
#include "train/optimizer.h"
#include "train/step.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace {

struct Options {
  std::string config, json;
  std::vector<std::string> sets;
  int steps = 20, warmup = 3;
  double peak_tflops = 989.0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "error: %s\nusage: autonomoe-bench --config FILE [--set key=value]... [--steps N] [--warmup N]\n"
               "                       [--peak-tflops X] [--json FILE]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    auto positive = [&](const std::string& v) {
      try {
        const int x = std::stoi(v);
        if (x >= 0) return x;
      } catch (const std::exception&) {
      }
      usage(("not a count: " + v).c_str());
    };
    if (a == "--config") o.config = value();
    else if (a == "--set") o.sets.push_back(value());
    else if (a == "--steps") o.steps = positive(value());
    else if (a == "--warmup") o.warmup = positive(value());
    else if (a == "--peak-tflops") o.peak_tflops = std::stod(value());
    else if (a == "--json") o.json = value();
    else usage(("unknown argument " + a).c_str());
  }
  if (o.config.empty()) usage("--config is required");
  if (o.steps < 1) usage("--steps must be at least 1");
  return o;
}

double peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  const Options o = parse(argc, argv);
  try {
    std::vector<std::string> sets = {"train.grad_accum=1"};  // throughput per micro-batch step
    sets.insert(sets.end(), o.sets.begin(), o.sets.end());
    const am::Config cfg = am::load_config(o.config, sets);
    const am::ModelConfig& m = cfg.model;
    const int B = cfg.train.micro_batch_size, T = cfg.data.seq_len;
    auto be = am::make_checked_backend(cfg.run);
    am::Transformer model(*be, m, B, T);
    model.store().init(cfg.run.seed);
    am::AdamW opt(model.store(), cfg.train);

    std::mt19937_64 rng(cfg.run.seed);
    std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.vocab_size));
      targets[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.vocab_size));
    }
    std::vector<double> ms;
    for (int s = 0; s < o.warmup + o.steps; ++s) {
      be->synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      am::train_step(model, opt, cfg.train, s, [&](int32_t* in, int32_t* tg) {
        std::copy(tokens.begin(), tokens.end(), in);
        std::copy(targets.begin(), targets.end(), tg);
      });
      be->synchronize();
      const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (s >= o.warmup) ms.push_back(dt);
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median_ms = sorted[sorted.size() / 2];
    const double tokens_per_s = static_cast<double>(B) * T / (median_ms / 1000.0);

    const am::ParamCounts pc = am::count_params(m);
    const double matmul_params = static_cast<double>(pc.active) - static_cast<double>(m.vocab_size) * m.d_model;
    const double attn = 6.0 * m.n_layers * T * m.n_heads * m.head_dim();
    const double flops_per_token = 6.0 * matmul_params + attn;
    const double mfu = flops_per_token * tokens_per_s / (o.peak_tflops * 1e12);
    const double peak_mem = be->name() == "cpu" ? peak_rss_bytes() : static_cast<double>(be->peak_bytes());

    std::printf("%s | %s | B=%d T=%d | median step %.2f ms (%d steps, %d warm-up) | %.0f tokens/s | "
                "%.3g GFLOP/token | MFU %.2f%% of %.0f TFLOP/s | peak memory %.2f GiB\n",
                o.config.c_str(), be->describe().c_str(), B, T, median_ms, o.steps, o.warmup, tokens_per_s,
                flops_per_token / 1e9, 100.0 * mfu, o.peak_tflops, peak_mem / 1073741824.0);
    if (!o.json.empty()) {
      const nlohmann::json j = {{"config", o.config},           {"sets", o.sets},
                                {"backend", be->describe()},    {"micro_batch", B},
                                {"seq_len", T},                 {"steps", o.steps},
                                {"warmup", o.warmup},           {"step_ms", ms},
                                {"median_step_ms", median_ms},  {"tokens_per_s", tokens_per_s},
                                {"params_total", pc.total},     {"params_active", pc.active},
                                {"flops_per_token", flops_per_token}, {"peak_tflops", o.peak_tflops},
                                {"mfu", mfu},                   {"peak_memory_bytes", peak_mem}};
      std::ofstream(o.json) << j.dump(2) << "\n";
    }
    return 0;
  } catch (const am::UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 3;
  }
}

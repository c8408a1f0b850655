#include "train/backend_check.h"

#include "backends/backend_factory.h"
#include "cpu/cpu_backend.h"
#include "dist/launch.h"
#include "model/transformer.h"
#include "train/optimizer.h"
#include "train/step.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace am {
namespace {

ModelConfig check_model(bool aoe) {
  ModelConfig m;
  m.vocab_size = 64;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = 2;
  m.max_seq_len = 32;
  m.init_std = 0.1;
  m.moe.n_experts = 4;
  m.moe.d_ffn = 48;
  m.moe.selector.k = 2;
  m.moe.aux.load_balance = 0.01;
  if (aoe) {
    m.moe.expert.type = "factorized";
    m.moe.expert.d_low = 8;
    m.moe.scorer.type = "act_norm";
  } else {
    m.moe.aux.z_loss = 0.001;
  }
  return m;
}

// Two optimizer steps on fixed random tokens: (ce, grad norm) of each. The auxiliary losses are
// left out: they count routed tokens, and one near-tied routing decision that falls the other way
// on the GPU moves them by a whole token's share, which is no error.
std::vector<double> two_steps(Backend& be, const ModelConfig& m) {
  const int B = 2, T = 16;
  Transformer model(be, m, B, T);
  model.store().init(11);
  TrainConfig tc;
  tc.micro_batch_size = B;
  tc.max_steps = 2;
  tc.lr = 1e-2;
  tc.lr_schedule = "constant";
  AdamW opt(model.store(), tc);
  std::mt19937_64 rng(12);
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.vocab_size));
    targets[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.vocab_size));
  }
  std::vector<double> out;
  for (int64_t s = 0; s < 2; ++s) {
    const StepResult r = train_step(model, opt, tc, s, /*accum=*/1, [&](int32_t* in, int32_t* tg) {
      std::copy(tokens.begin(), tokens.end(), in);
      std::copy(targets.begin(), targets.end(), tg);
    });
    out.insert(out.end(), {r.ce, r.grad_norm});
  }
  return out;
}

}  // namespace

BackendCheck check_against_cpu(Backend& be, Precision p, double rtol) {
  if (rtol <= 0) rtol = p == Precision::BF16 ? 3e-2 : 1e-3;
  auto cpu = make_cpu_backend(precision_dtype(p), 1, p == Precision::BF16);
  static const char* kWhat[] = {"step 1 loss", "step 1 gradient norm", "step 2 loss", "step 2 gradient norm"};
  BackendCheck c;
  for (const bool aoe : {false, true}) {
    const ModelConfig m = check_model(aoe);
    const std::vector<double> got = two_steps(be, m), want = two_steps(*cpu, m);
    for (size_t i = 0; i < got.size(); ++i) {
      const double rel = std::fabs(got[i] - want[i]) / std::max(std::fabs(want[i]), 1e-6);
      const bool bad = !(rel <= rtol);  // NaN fails too
      c.worst = std::isnan(rel) ? rel : std::max(c.worst, rel);
      if (bad && c.ok) {
        c.ok = false;
        c.detail = fmt::format("{} model, {}: {} {} vs cpu {} (relative difference {:.2e} > {:.0e})",
                               aoe ? "AoE" : "router", kWhat[i], be.name(), got[i], want[i], rel, rtol);
      }
    }
  }
  if (c.ok) c.detail = fmt::format("agrees with the CPU reference (largest relative difference {:.1e})", c.worst);
  return c;
}

std::unique_ptr<Backend> make_checked_backend(const RunConfig& run) {
  const Precision p = precision_from_name(run.precision);
  std::unique_ptr<Backend> be = make_backend(run.backend, p, run.threads);
  if (be->name() == "cpu") return be;
  BackendCheck c;
  try {
    c = check_against_cpu(*be, p);
  } catch (const std::exception& e) {  // e.g. a build without kernels for this GPU's architecture
    c.ok = false;
    c.detail = e.what();
  }
  if (c.ok) {
    spdlog::info("backend check: {} {}", be->name(), c.detail);
    return be;
  }
  const std::string what =
      fmt::format("the {} backend failed its start-up check against the CPU reference: {}", be->name(), c.detail);
  const char* hint = "run scripts/device_check.sh for the full parity tests, and report the log";
  // Under mpirun every rank must use the same backend and communicator: no fallback rank by rank.
  if (run.backend != "auto" || mpi_active()) throw UserError(what, hint);
  spdlog::warn("{}; training on the CPU instead ({})", what, hint);
  return make_backend("cpu", p, run.threads);
}

}  // namespace am

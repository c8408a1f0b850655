#include "train/batch.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace am {
namespace {

// "train.global_batch = 2048 (configs/paper/base_732m.yaml:37)", from the resolved keys.
std::string show(const Config& cfg, const std::string& path) {
  for (const ResolvedKey& r : cfg.resolved) {
    if (r.path == path) return fmt::format("{} = {} ({})", r.path, r.value, r.source);
  }
  return path;
}

std::string join_ints(const std::vector<int>& v, size_t max_shown = 12) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_shown; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  if (v.size() > max_shown) s += ", ...";
  return s;
}

// The divisors of n, ascending.
std::vector<int> divisors(int64_t n) {
  std::vector<int> low, high;
  for (int64_t d = 1; d * d <= n; ++d) {
    if (n % d != 0) continue;
    low.push_back(static_cast<int>(d));
    if (d * d != n) high.push_back(static_cast<int>(n / d));
  }
  low.insert(low.end(), high.rbegin(), high.rend());
  return low;
}

[[noreturn]] void not_divisible(const Config& cfg, const BatchPlan& p) {
  const int64_t per_round = int64_t{p.micro} * p.dp;
  std::string hint = fmt::format("run on a number of processes that divides {} / {} = {} ({})", p.global, p.micro,
                                 p.global / p.micro, join_ints(divisors(p.global / p.micro)));
  if (p.global % p.dp == 0) {
    hint += fmt::format(", or set train.micro_batch_size to a divisor of {} / {} = {} ({})", p.global, p.dp,
                        p.global / p.dp, join_ints(divisors(p.global / p.dp)));
  }
  throw UserError(
      fmt::format("the global batch does not divide into micro-batches on every rank: {} is not a "
                  "multiple of {} x data-parallel size {} ({}; every rank trains its own "
                  "micro-batches, with dist.ep too) = {}",
                  show(cfg, "train.global_batch"), show(cfg, "train.micro_batch_size"), p.dp, p.dp_source, per_round),
      hint + " (docs/training.md, \"Batch\")");
}

[[noreturn]] void unstated(const Config& cfg, const BatchPlan& p) {
  const std::string accum =
      cfg.train.grad_accum > 0 ? fmt::format(" x {}", show(cfg, "train.grad_accum")) : std::string();
  throw UserError(fmt::format("train.global_batch is not set, and this run has data-parallel size {} ({}): "
                              "{}{} = {} sequences is the batch of one process; say how many sequences an "
                              "optimizer step takes over all ranks together",
                              p.dp, p.dp_source, show(cfg, "train.micro_batch_size"), accum, p.global),
                  fmt::format("set train.global_batch (e.g. --set train.global_batch={} keeps the one-process batch, "
                              "if train.micro_batch_size x {} divides it; {} = {} x {} is what {} processes trained "
                              "before global_batch existed) and leave train.grad_accum out (docs/training.md)",
                              p.global, p.dp, p.global * p.dp, p.global, p.dp, p.dp));
}

}  // namespace

std::string BatchPlan::describe() const {
  return fmt::format("global batch {} sequences{} = micro-batch {} x accumulation {} x data-parallel size {} ({})",
                     global, stated ? "" : " (micro_batch_size x grad_accum: train.global_batch not set)", micro, accum,
                     dp, dp_source);
}

int64_t stated_global_batch(const TrainConfig& tc) {
  if (tc.global_batch > 0) return tc.global_batch;
  return int64_t{tc.micro_batch_size} * std::max(tc.grad_accum, 1);
}

BatchPlan derive_batch(const Config& cfg, int dp, const std::string& dp_source) {
  const TrainConfig& tc = cfg.train;
  AM_CHECK(dp >= 1 && tc.micro_batch_size >= 1, "derive_batch: dp {} micro {}", dp, tc.micro_batch_size);
  BatchPlan p;
  p.global = stated_global_batch(tc);
  p.micro = tc.micro_batch_size;
  p.dp = dp;
  p.dp_source = dp_source;
  p.stated = tc.global_batch > 0;
  if (!p.stated && dp > 1) unstated(cfg, p);
  if (p.global % (int64_t{p.micro} * dp) != 0) not_divisible(cfg, p);
  p.accum = static_cast<int>(p.global / (int64_t{p.micro} * dp));
  if (tc.grad_accum > 0 && tc.grad_accum != p.accum) {
    throw UserError(fmt::format("{} does not match the accumulation derived from {} / ({} x data-parallel size {} "
                                "({})) = {}",
                                show(cfg, "train.grad_accum"), show(cfg, "train.global_batch"),
                                show(cfg, "train.micro_batch_size"), dp, dp_source, p.accum),
                    "leave train.grad_accum out (or set it to 0): it is derived from train.global_batch, so that "
                    "the batch stays the same on any number of processes (docs/training.md, \"Batch\")");
  }
  return p;
}

std::vector<int> valid_data_parallel_sizes(const TrainConfig& tc, int max_dp) {
  std::vector<int> out;
  for (int d : divisors(stated_global_batch(tc) / tc.micro_batch_size)) {
    if (d <= max_dp) out.push_back(d);
  }
  return out;
}

void set_batch(Config& cfg, const BatchPlan& plan) {
  cfg.train.global_batch = static_cast<int>(plan.global);
  cfg.train.grad_accum = 0;
  for (ResolvedKey& r : cfg.resolved) {
    if (r.path == "train.global_batch" && r.value != std::to_string(plan.global)) {
      r.value = std::to_string(plan.global);
      r.source = "derived: micro_batch_size x grad_accum";
    } else if (r.path == "train.grad_accum" && r.value != "0") {
      r.value = std::to_string(0);  // (a string literal here trips GCC 12's -Wrestrict)
      r.source = fmt::format("derived: {} at start-up", plan.accum);
    }
  }
}

}  // namespace am

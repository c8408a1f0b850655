#include "train/trainer.h"

#include "core/backend.h"
#include "data/dataset_meta.h"
#include "data/loader.h"
#include "dist/launch.h"
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "model/model_info.h"
#include "model/transformer.h"
#include "moe/moe_metrics.h"
#include "train/backend_check.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/step.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <map>
#include <optional>

namespace am {
namespace fs = std::filesystem;
namespace {

// ---- signals: the first SIGINT/SIGTERM asks the loop to stop after the current step ----
std::atomic<int> g_stop_signals{0};

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signals.fetch_add(1) >= 1) {  // a second signal: stop now (checkpoints are atomic)
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

class SignalGuard {
 public:
  explicit SignalGuard(bool enable) : enabled_(enable) {
    g_stop_signals = 0;
    if (!enabled_) return;
    prev_int_ = std::signal(SIGINT, on_stop_signal);
    prev_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~SignalGuard() {
    if (!enabled_) return;
    std::signal(SIGINT, prev_int_);
    std::signal(SIGTERM, prev_term_);
  }

 private:
  bool enabled_;
  void (*prev_int_)(int) = SIG_DFL;
  void (*prev_term_)(int) = SIG_DFL;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fmt_duration(double s) {
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

std::string fmt_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{:.0f} B", b);
}

std::string fmt_count(double x) {
  if (x >= 1e9) return fmt::format("{:.2f}B", x / 1e9);
  if (x >= 1e6) return fmt::format("{:.2f}M", x / 1e6);
  if (x >= 1e3) return fmt::format("{:.1f}k", x / 1e3);
  return fmt::format("{:.0f}", x);
}

// Per-layer MoE metrics over the interval since the last record (moe/moe_metrics.h); resets them.
nlohmann::json moe_metrics(Transformer& model) {
  nlohmann::json layers = nlohmann::json::array();
  for (MoeLayer* l : model.moe_layers()) {
    layers.push_back(moe_layer_metrics(*l, model.config().moe.selector.k));
    l->reset_stats();
  }
  return layers;
}

// Model keys must match between a checkpoint and the config that resumes it.
void check_resume_compatible(const Config& ckpt, const Config& now, const std::string& dir) {
  std::vector<std::string> diffs;
  for (size_t i = 0; i < ckpt.resolved.size() && i < now.resolved.size(); ++i) {
    const ResolvedKey &a = ckpt.resolved[i], &b = now.resolved[i];
    if (a.path.rfind("model.", 0) == 0 && a.value != b.value) {
      diffs.push_back(fmt::format("{}: checkpoint {}, config {}", a.path, a.value, b.value));
    }
  }
  if (!diffs.empty()) {
    std::string list;
    for (const auto& d : diffs) list += "\n    " + d;
    throw UserError(fmt::format("cannot resume from {}: the model differs from the config:{}", dir, list),
                    "resume with the config the run was started with (it is in the run directory as "
                    "config.resolved.yaml)");
  }
}

// runs/<name>/summary.json, written when a run reaches max_steps (sweeps read it; docs/training.md).
void write_run_summary(const TrainSummary& s, const Config& cfg, const ParamCounts& pc, int64_t tokens,
                       const nlohmann::json& moe) {
  auto number_or_null = [](double x) { return std::isnan(x) ? nlohmann::json() : nlohmann::json(x); };
  double experts_per_token = 0, ent_load = 0;
  for (const auto& l : moe) {
    experts_per_token += l.at("experts_per_token").get<double>() / static_cast<double>(moe.size());
    ent_load += l.at("ent_load").get<double>() / static_cast<double>(moe.size());
  }
  const nlohmann::json j = {
      {"format", "autonomoe-run-summary"}, {"version", 1}, {"completed", true},
      {"steps", s.end_step}, {"tokens", tokens},
      {"final_train_loss", number_or_null(s.final_train_loss)},
      {"final_val_loss", number_or_null(s.final_val_loss)},
      {"final_val_ppl", number_or_null(std::exp(s.final_val_loss))},
      {"unigram_entropy", number_or_null(s.unigram_entropy)},
      {"tokens_per_s", s.tokens_per_s}, {"train_seconds", s.seconds},
      {"params_total", pc.total}, {"params_active", pc.active},
      {"experts_per_token", moe.empty() ? nlohmann::json() : nlohmann::json(experts_per_token)},
      {"ent_load", moe.empty() ? nlohmann::json() : nlohmann::json(ent_load)},
      {"last_checkpoint", s.last_checkpoint}, {"config", cfg.source_path}};
  write_file_atomic((fs::path(s.run_dir) / "summary.json").string(), j.dump(2) + "\n");
}

}  // namespace

std::string run_dir_of(const Config& cfg) {
  return (fs::path(cfg.run.out_dir) / cfg.run.name).string();
}

TrainSummary train(const Config& cfg, const TrainOptions& options) {
  const TrainConfig& tc = cfg.train;
  const int B = tc.micro_batch_size, T = cfg.data.seq_len;
  TrainSummary summary;
  summary.run_dir = run_dir_of(cfg);
  const std::string ckpt_root = (fs::path(summary.run_dir) / "checkpoints").string();

  // ---- where we start from ----
  std::optional<std::string> resume_dir;
  if (options.resume == "latest") {
    auto latest = fs::exists(ckpt_root) ? latest_checkpoint(ckpt_root) : std::nullopt;
    if (!latest) {
      throw UserError(fmt::format("--resume: run directory {} has no complete checkpoint", summary.run_dir),
                      "start the run without --resume, or pass a checkpoint directory to --resume");
    }
    resume_dir = latest->path;
  } else if (!options.resume.empty()) {
    resume_dir = options.resume;
  } else if (fs::exists(ckpt_root) && latest_checkpoint(ckpt_root)) {
    throw UserError(
        fmt::format("run directory {} already holds checkpoints (newest: {})", summary.run_dir,
                    latest_checkpoint(ckpt_root)->path),
        "continue it with --resume, or start a new run with --set run.name=<another name>");
  }

  // ---- processes, backend, data, model, optimizer ----
  std::unique_ptr<Backend> be = make_checked_backend(cfg.run);  // GPU: the node-local rank's
  std::unique_ptr<Comm> own_world = options.world ? nullptr : make_world_comm(cfg.dist.comm, be->name());
  Comm& world = options.world ? *options.world : *own_world;
  const Distributed layout(world, cfg.dist.ep);
  const DistContext& dist = layout.context();
  const bool root = dist.is_root();
  summary.rank = dist.rank();

  const std::optional<DatasetMeta> meta = read_dataset_meta(cfg.data.train);
  if (meta && meta->vocab_size != cfg.model.vocab_size) {
    throw UserError(fmt::format("model.vocab_size is {} but the data's vocabulary ({}) has {} tokens",
                                cfg.model.vocab_size, meta->path, meta->vocab_size),
                    fmt::format("set model.vocab_size: {} (or --set model.vocab_size={})",
                                meta->vocab_size, meta->vocab_size));
  }
  if (meta) summary.unigram_entropy = meta->unigram_entropy_nats;
  DataLoader train_data(cfg.data.train, B, T, cfg.data.shuffle, cfg.run.seed, cfg.model.vocab_size, dist.rank(),
                        dist.world_size());
  std::unique_ptr<DataLoader> val_data;
  int eval_batches = cfg.eval.batches;
  if (!cfg.data.val.empty()) {
    val_data = std::make_unique<DataLoader>(cfg.data.val, B, T, false, cfg.run.seed, cfg.model.vocab_size);
    const int avail = eval_batches_available(*val_data, B);
    if (avail < eval_batches) {
      spdlog::warn("eval.batches is {} but {} holds only {} micro-batches of {}x{}; evaluating on {}",
                   eval_batches, cfg.data.val, avail, B, T, std::max(avail, 1));
      eval_batches = std::max(avail, 1);
    }
  }

  Transformer model(*be, cfg.model, B, T, &dist);
  for (MoeLayer* l : model.moe_layers()) {
    if (!l->trainable()) {
      throw UserError(fmt::format("model.moe.scorer.node {} is for evaluation only: every expert would run "
                                  "up to that node for every token, and it has no backward pass",
                                  cfg.model.moe.scorer.node),
                      "train AoE with scorer.node: latent; use other nodes with `autonomoe eval --set ...`");
    }
  }
  if (cfg.model.moe.scorer.type != "none" && cfg.model.moe.selector.type == "expert_choice") {
    spdlog::warn("expert choice (group: {}) selects each token by comparing it with every token of its group, "
                 "later tokens of the same sequence included: training is not causal, and generation sees "
                 "other groups than training (docs/selection.md)", cfg.model.moe.selector.group);
  }
  AdamW opt(model.store(), tc, cfg.dist.zero == 1 ? &dist : nullptr);  // ZeRO-1: moments sharded
  TrainerState state;
  if (resume_dir) {
    const Config ckpt_cfg = load_checkpoint_config(*resume_dir);
    check_resume_compatible(ckpt_cfg, cfg, *resume_dir);
    state = load_checkpoint(*resume_dir, model.store(), &opt,
                            dist.ep_size > 1 ? UnusedTensors::Quiet : UnusedTensors::Refuse);
    train_data.restore(state.train_loader);
    summary.last_checkpoint = *resume_dir;
  } else {
    model.store().init(cfg.run.seed);
  }
  summary.start_step = summary.end_step = state.step;

  // Rank 0 writes the run directory; the others write nothing.
  std::unique_ptr<MetricsLog> metrics;
  if (root) {
    fs::create_directories(summary.run_dir);
    if (fs::exists(ckpt_root)) remove_stale_temp_dirs(ckpt_root);
    write_file_atomic((fs::path(summary.run_dir) / "config.resolved.yaml").string(), config_to_yaml(cfg));
    metrics = std::make_unique<MetricsLog>((fs::path(summary.run_dir) / "metrics.jsonl").string(),
                                           resume_dir ? state.step : -1);
  }
  world.barrier();

  const ParamCounts pc = count_params(cfg.model);
  const int64_t tokens_per_step = static_cast<int64_t>(B) * T * tc.grad_accum * dist.world_size();
  spdlog::info("config {}\n{}", cfg.source_path, config_table(cfg));
  spdlog::info("backend: {}", be->describe());
  if (dist.world_size() > 1) {
    spdlog::info("processes: {} ({} communication), expert-parallel groups of {}", dist.world_size(), world.name(),
                 dist.ep_size);
  }
  spdlog::info("model: {} parameters, {} active per token", fmt_count(pc.total), fmt_count(pc.active));
  summary.opt_state_bytes = opt.state_bytes();
  if (opt.sharded()) {
    spdlog::info("optimizer: AdamW moments {} on rank 0, {} unsharded (ZeRO-1: those of dense tensors sharded "
                 "over {} rank(s), of expert weights over {})",
                 fmt_bytes(static_cast<double>(opt.state_bytes())),
                 fmt_bytes(static_cast<double>(opt.unsharded_state_bytes())), dist.world_size(), dist.replica->size());
  } else {
    spdlog::info("optimizer: AdamW moments {} per rank", fmt_bytes(static_cast<double>(opt.state_bytes())));
  }
  spdlog::info("data: {} shard(s), {} tokens, {} windows of {} per epoch; {} tokens per step",
               train_data.shards().size(), fmt_count(train_data.total_tokens()),
               train_data.windows_per_epoch(), T, tokens_per_step);
  spdlog::info("run directory: {}{}", summary.run_dir,
               resume_dir ? fmt::format(" (resuming from step {}: {})", state.step, *resume_dir) : "");

  auto write_checkpoint = [&]() {
    state.train_loader = train_data.state();
    summary.last_checkpoint = save_checkpoint(ckpt_root, cfg, model.store(), &opt, state, &dist);
    if (root) {
      prune_checkpoints(ckpt_root, cfg.checkpoint.keep_last, state.step);
      spdlog::info("checkpoint: {}", summary.last_checkpoint);
    }
    world.barrier();  // the checkpoint is complete before any rank goes on (or exits)
  };
  if (!resume_dir && cfg.checkpoint.save_initial) write_checkpoint();

  // ---- the loop ----
  SignalGuard signals(options.handle_signals);
  const auto t_start = std::chrono::steady_clock::now();
  const double elapsed_before = state.elapsed_s;
  double interval_s = 0;
  int interval_steps = 0;
  for (MoeLayer* l : model.moe_layers()) l->reset_stats();
  nlohmann::json last_moe = nlohmann::json::array();  // the MoE metrics of the last log record

  while (state.step < tc.max_steps) {
    const int64_t step = state.step;
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r =
        train_step(model, opt, tc, step, [&](int32_t* in, int32_t* tg) { train_data.next(in, tg); }, &dist);
    const double ce = r.ce, aux = r.aux, norm = r.grad_norm, lr = r.lr;
    be->synchronize();
    const double dt = seconds_since(t0);
    state.step = step + 1;
    state.tokens += tokens_per_step;
    state.elapsed_s = elapsed_before + seconds_since(t_start);
    summary.step_losses.push_back(ce);
    summary.final_train_loss = ce;
    interval_s += dt;
    interval_steps += 1;
    summary.seconds += dt;

    const bool last = state.step == tc.max_steps;
    // Every rank stops at the same step: a signal seen by any rank stops all of them.
    const bool stopping = world.all_reduce_sum(g_stop_signals.load() > 0 ? 1.0 : 0.0) > 0;
    if (state.step % cfg.log.every == 0 || last || stopping || step == summary.start_step) {
      const double tps = static_cast<double>(tokens_per_step) * interval_steps / interval_s;
      const double eta = (tc.max_steps - state.step) * interval_s / interval_steps;
      const nlohmann::json layers = moe_metrics(model);
      last_moe = layers;
      // Each auxiliary loss summed over layers (mean over the interval's micro-batches).
      std::map<std::string, double> aux_by_name;
      for (const auto& l : layers) {
        for (const auto& [k, v] : l.at("aux").items()) aux_by_name[k] += v.get<double>();
      }
      std::string aux_text;
      for (const auto& [k, v] : aux_by_name) aux_text += fmt::format(" | {} {:.4f}", k, v);
      // Time blocked in communication over the interval (gradient reductions, expert exchanges,
      // ZeRO-1's parameter all-gathers).
      Comm::Timing comm_time;
      for (Comm* c : {dist.world, dist.ep, dist.replica}) {
        comm_time.all_reduce_s += c->timing().all_reduce_s;
        comm_time.all_to_all_s += c->timing().all_to_all_s;
        comm_time.all_gather_s += c->timing().all_gather_s;
        c->reset_timing();
      }
      if (dist.world_size() > 1) {
        aux_text += fmt::format(" | comm {:.0f}+{:.0f}", 1e3 * comm_time.all_reduce_s, 1e3 * comm_time.all_to_all_s);
        if (opt.sharded()) aux_text += fmt::format("+{:.0f}", 1e3 * comm_time.all_gather_s);
        aux_text += " ms";
      }
      spdlog::info("step {:>6}/{} | loss {:.4f}{} | lr {:.2e} | gnorm {:.3f} | {} tok/s | ETA {}",
                   state.step, tc.max_steps, ce, aux_text, lr, norm, fmt_count(tps), fmt_duration(eta));
      if (metrics) metrics->write({{"type", "train"}, {"step", state.step}, {"loss", ce}, {"aux", aux},
                     {"aux_by_name", aux_by_name}, {"lr", lr}, {"grad_norm", norm},
                     {"tokens", state.tokens}, {"tokens_per_s", tps}, {"elapsed_s", state.elapsed_s},
                     {"comm", {{"all_reduce_s", comm_time.all_reduce_s}, {"all_to_all_s", comm_time.all_to_all_s},
                               {"all_gather_s", comm_time.all_gather_s}}},
                     {"moe", layers}});
      interval_s = 0;
      interval_steps = 0;
    }
    if (val_data && ((cfg.eval.every > 0 && state.step % cfg.eval.every == 0) || last)) {
      const EvalResult ev = evaluate(model, *val_data, eval_batches);
      summary.final_val_loss = ev.loss;
      spdlog::info("step {:>6}/{} | val loss {:.4f} | val ppl {:.2f} ({} tokens)", state.step,
                   tc.max_steps, ev.loss, ev.perplexity, ev.tokens);
      if (metrics) metrics->write({{"type", "val"}, {"step", state.step}, {"val_loss", ev.loss},
                     {"val_ppl", ev.perplexity}, {"tokens", ev.tokens}});
    }
    if ((cfg.checkpoint.every > 0 && state.step % cfg.checkpoint.every == 0) || last || stopping) {
      write_checkpoint();
    }
    if (stopping) {
      summary.interrupted = true;
      spdlog::warn("interrupted at step {}: checkpoint written to {}", state.step, summary.last_checkpoint);
      if (!options.command_hint.empty()) spdlog::warn("resume with: {}", options.command_hint);
      break;
    }
  }
  summary.end_step = state.step;
  const int64_t steps_run = summary.end_step - summary.start_step;
  if (summary.seconds > 0 && steps_run > 0) {
    summary.tokens_per_s = static_cast<double>(tokens_per_step) * steps_run / summary.seconds;
  }
  if (root && state.step == tc.max_steps && !summary.interrupted && steps_run > 0) {
    write_run_summary(summary, cfg, pc, state.tokens, last_moe);
  }
  return summary;
}

}  // namespace am

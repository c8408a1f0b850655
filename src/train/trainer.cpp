#include "train/trainer.h"

#include "config/strategy.h"
#include "core/backend.h"
#include "data/dataset_meta.h"
#include "data/loader.h"
#include "dist/launch.h"
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "io/output_dir.h"
#include "model/model_info.h"
#include "model/transformer.h"
#include "moe/moe_metrics.h"
#include "train/backend_check.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/flops.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/resume_check.h"
#include "train/run_facts.h"
#include "train/step.h"
#include "train/stop_signals.h"
#include "train/task_eval_periodic.h"
#include "train/tensorboard.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

namespace am {
namespace fs = std::filesystem;
namespace {

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

// runs/<name>/summary.json, written when a run reaches max_steps (sweeps read it; docs/training.md).
void write_run_summary(const TrainSummary& s, const Config& cfg, const ParamCounts& pc, int64_t tokens,
                       const nlohmann::json& moe) {
  auto number_or_null = [](double x) { return std::isnan(x) ? nlohmann::json() : nlohmann::json(x); };
  double experts_per_token = 0, ent_load = 0;
  for (const auto& l : moe) {
    experts_per_token += l.at("experts_per_token").get<double>() / static_cast<double>(moe.size());
    ent_load += l.at("ent_load").get<double>() / static_cast<double>(moe.size());
  }
  const nlohmann::json j = {{"format", "autonomoe-run-summary"},
                            {"version", 1},
                            {"completed", true},
                            {"steps", s.end_step},
                            {"tokens", tokens},
                            {"final_train_loss", number_or_null(s.final_train_loss)},
                            {"final_val_loss", number_or_null(s.final_val_loss)},
                            {"final_val_ppl", number_or_null(std::exp(s.final_val_loss))},
                            {"unigram_entropy", number_or_null(s.unigram_entropy)},
                            {"tokens_per_s", s.tokens_per_s},
                            {"train_seconds", s.seconds},
                            {"params_total", pc.total},
                            {"params_active", pc.active},
                            {"experts_per_token", moe.empty() ? nlohmann::json() : nlohmann::json(experts_per_token)},
                            {"ent_load", moe.empty() ? nlohmann::json() : nlohmann::json(ent_load)},
                            {"last_checkpoint", s.last_checkpoint},
                            {"config", cfg.source_path}};
  write_file_atomic((fs::path(s.run_dir) / "summary.json").string(), j.dump(2) + "\n");
}

// ---- train(), in pieces: setup_run builds a Run, run_loop trains it, finish_run sums it up ----

// What train() builds before its loop, and what the loop, its log lines and the summary work on.
// Members are declared in the order they are built, so they are destroyed in the reverse order (the
// optimizer and model before the data, the communicators and then the backend last).
struct Run {
  Run(const Config& c, const TrainOptions& o)
      : cfg(c), tc(cfg.train), options(o), B(c.train.micro_batch_size), T(c.data.seq_len) {}
  Run(const Run&) = delete;  // the model and optimizer keep pointers into it
  Run& operator=(const Run&) = delete;

  Config cfg;  // as trained: the global batch stated (set_batch), whatever the config left derived
  const TrainConfig& tc;
  const TrainOptions& options;
  const int B, T;
  TrainSummary summary;
  std::string ckpt_root;                  // <run dir>/checkpoints
  std::optional<std::string> resume_dir;  // the checkpoint resumed from, if any
  std::unique_ptr<Backend> be;
  std::unique_ptr<Comm> own_world;  // made here unless options.world is given
  Comm* world = nullptr;
  std::optional<Distributed> layout;
  const DistContext* dist = nullptr;
  BatchPlan batch;    // global batch = B x accumulation x data-parallel size
  bool root = false;  // rank 0: writes the run directory and the summary
  std::optional<DataLoader> train_data;
  std::unique_ptr<DataLoader> val_data;  // null without data.val
  int eval_batches = 0;
  std::unique_ptr<PeriodicTaskEval> tasks;  // null without eval.tasks
  std::optional<Transformer> model;
  std::optional<AdamW> opt;
  TrainerState state;
  std::unique_ptr<MetricsLog> metrics;   // rank 0 only
  const StopSignals* signals = nullptr;  // train()'s guard, from the set-up on
  ParamCounts pc;
  int64_t tokens_per_step = 0;
  double flops_per_token = 0;     // train/flops.h
  std::optional<PeakFlops> peak;  // MFU's denominator; none: no MFU shown
};

// Where the run starts: the checkpoint to resume from, or none. A fresh run refuses a run directory
// that already holds checkpoints, so that it never mixes two runs' checkpoints and metrics.
std::optional<std::string> resume_point(const TrainOptions& options, const std::string& run_dir,
                                        const std::string& ckpt_root) {
  if (options.resume == "latest") {
    auto latest = fs::exists(ckpt_root) ? latest_checkpoint(ckpt_root) : std::nullopt;
    if (!latest) {
      throw UserError(fmt::format("--resume: run directory {} has no complete checkpoint", run_dir),
                      "start the run without --resume, or pass a checkpoint directory to --resume");
    }
    return latest->path;
  }
  if (!options.resume.empty()) return options.resume;
  if (fs::exists(ckpt_root) && latest_checkpoint(ckpt_root)) {
    throw UserError(fmt::format("run directory {} already holds checkpoints (newest: {})", run_dir,
                                latest_checkpoint(ckpt_root)->path),
                    "continue it with --resume, or start a new run with --set run.name=<another name>");
  }
  return std::nullopt;
}

// The backend, the world communicator and this rank's place in the expert-parallel layout.
void open_processes(Run& run) {
  run.be = make_checked_backend(run.cfg.run);  // GPU: the node-local rank's
  if (!run.options.world) run.own_world = make_world_comm(run.cfg.dist.comm, run.be->name());
  run.world = run.options.world ? run.options.world : run.own_world.get();
  run.layout.emplace(*run.world, run.cfg.dist.ep);
  run.dist = &run.layout->context();
  run.root = run.dist->is_root();
  run.summary.rank = run.dist->rank();
}

// The global batch over this run's ranks (train/batch.h): the accumulation derived, and the config
// the run writes stating the global batch it trains with.
void plan_batch(Run& run) {
  const int dp = run.dist->world_size();  // every rank trains its own micro-batches (ep too)
  run.batch = derive_batch(
      run.cfg, dp,
      dp == 1 ? std::string("one process") : fmt::format("{} processes, {} communication", dp, run.world->name()));
  set_batch(run.cfg, run.batch);
}

// The training data (this rank's share of it) and the validation data, checked against the model.
void open_data(Run& run) {
  const Config& cfg = run.cfg;
  const int B = run.B, T = run.T;
  const std::optional<DatasetMeta> meta = read_dataset_meta(cfg.data.train);
  if (meta && meta->vocab_size != cfg.model.vocab_size) {
    throw UserError(
        fmt::format("model.vocab_size is {} but the data's vocabulary ({}) has {} tokens", cfg.model.vocab_size,
                    meta->path, meta->vocab_size),
        fmt::format("set model.vocab_size: {} (or --set model.vocab_size={})", meta->vocab_size, meta->vocab_size));
  }
  if (meta) run.summary.unigram_entropy = meta->unigram_entropy_nats;
  run.train_data.emplace(cfg.data.train, B, T, cfg.data.shuffle, cfg.run.seed, cfg.model.vocab_size, run.dist->rank(),
                         run.dist->world_size());
  run.train_data->set_windows_per_step(run.batch.global);
  run.eval_batches = cfg.eval.batches;
  if (!cfg.data.val.empty()) {
    run.val_data = std::make_unique<DataLoader>(cfg.data.val, B, T, false, cfg.run.seed, cfg.model.vocab_size);
    const int avail = eval_batches_available(*run.val_data, B);
    if (avail < run.eval_batches) {
      spdlog::warn("eval.batches is {} but {} holds only {} micro-batches of {}x{}; evaluating on {}", run.eval_batches,
                   cfg.data.val, avail, B, T, std::max(avail, 1));
      run.eval_batches = std::max(avail, 1);
    }
  }
}

// The data loader's position from a checkpoint's trainer state; errors name the file and key. The
// position counts the windows read so far, every one of them T tokens of `tokens`, so an edited
// epoch (or tokens) is refused here rather than resuming on other data.
void restore_loader(DataLoader& loader, const TrainerState& state, const std::string& dir, bool allow_batch_change,
                    int T) {
  const std::string file = (fs::path(dir) / "trainer_state.json").string();
  loader.restore(state.train_loader, allow_batch_change, file + ": train_loader");
  const LoaderPosition p = loader.position();
  const uint64_t W = static_cast<uint64_t>(loader.windows_per_epoch()), read = static_cast<uint64_t>(state.tokens / T);
  if (state.tokens % T != 0 || p.epoch > read / W || p.epoch * W + p.cursor != read) {
    throw UserError(fmt::format("{}: train_loader: epoch {}, cursor {} is not where tokens: {} ({} windows of {} "
                                "tokens) end, at epoch {}, cursor {} (epochs of {} windows)",
                                file, p.epoch, p.cursor, state.tokens, read, T, read / W, read % W, W),
                    "the checkpoint was edited or damaged; use another checkpoint");
  }
}

// Every rank runs the same config on the same data, resuming the same checkpoint, or the job stops
// here on every rank naming the first difference (before anything that would hang or mix shapes).
void check_ranks_agree(const Run& run) {
  require_ranks_agree(*run.world, run_facts(run.cfg, run.be->name(), run.world->name(), run.resume_dir, *run.train_data,
                                            run.val_data.get()));
}

// The model and optimizer, from the checkpoint resumed from or freshly initialized.
void build_model(Run& run) {
  const Config& cfg = run.cfg;
  run.model.emplace(*run.be, cfg.model, run.B, run.T, run.dist);
  for (MoeLayer* l : run.model->moe_layers()) {
    if (!l->trainable()) {
      throw UserError(fmt::format("model.moe.scorer.node {} is for evaluation only: every expert would run "
                                  "up to that node for every token, and it has no backward pass",
                                  cfg.model.moe.scorer.node),
                      "train AoE with scorer.node: latent; use other nodes with `autonomoe eval --set ...`");
    }
  }
  if (!cfg.model.moe.dense() && !selector_of(cfg.model.moe).causal) {
    spdlog::warn(
        "{} (group: {}) selects each token by comparing it with every token of its group, "
        "later tokens of the same sequence included: training is not causal, and generation sees "
        "other groups than training (docs/selection.md)",
        selector_of(cfg.model.moe).name, cfg.model.moe.selector.group);
  }
  run.opt.emplace(run.model->store(), run.tc, cfg.dist.zero == 1 ? run.dist : nullptr);  // ZeRO-1: moments sharded
  if (run.resume_dir) {
    const Config ckpt_cfg = load_checkpoint_config(*run.resume_dir);
    const bool allow = run.options.allow_schedule_change;
    check_resume_compatible(ckpt_cfg, cfg, *run.resume_dir, allow, run.root);
    run.state = load_checkpoint(*run.resume_dir, run.model->store(), &*run.opt,
                                run.dist->ep_size > 1 ? UnusedTensors::Quiet : UnusedTensors::Refuse);
    restore_loader(*run.train_data, run.state, *run.resume_dir, allow, run.T);
    run.summary.last_checkpoint = *run.resume_dir;
  } else {
    run.model->store().init(cfg.run.seed);
  }
  run.summary.start_step = run.summary.end_step = run.state.step;
}

// metrics.jsonl's records also as TensorBoard scalars (train/tensorboard.h); a folder that cannot
// be written is a warning, not the end of the run.
void open_tensorboard(Run& run) {
  try {
    run.metrics->mirror_to(std::make_unique<TensorBoardLog>((fs::path(run.summary.run_dir) / "tensorboard").string(),
                                                            run.resume_dir ? run.state.step : -1));
  } catch (const std::exception& e) {
    spdlog::warn("TensorBoard: {}; training goes on without it (log.tensorboard: false turns it off)", e.what());
  }
}

// Rank 0 writes the run directory (config.resolved.yaml, metrics.jsonl); the others write nothing.
void open_run_dir(Run& run) {
  if (run.root) {
    create_output_dir(run.summary.run_dir, "the run directory (run.out_dir/run.name)");
    if (fs::exists(run.ckpt_root)) remove_stale_temp_dirs(run.ckpt_root);
    write_file_atomic((fs::path(run.summary.run_dir) / "config.resolved.yaml").string(), config_to_yaml(run.cfg));
    run.metrics = std::make_unique<MetricsLog>((fs::path(run.summary.run_dir) / "metrics.jsonl").string(),
                                               run.resume_dir ? run.state.step : -1);
    if (run.cfg.log.tensorboard) open_tensorboard(run);
  }
  run.world->barrier();
}

// The start-up lines: config, backend, processes, model, optimizer, data, run directory.
void log_setup(const Run& run) {
  const Config& cfg = run.cfg;
  const DistContext& dist = *run.dist;
  spdlog::info("config {}\n{}", cfg.source_path, config_table(cfg));
  spdlog::info("backend: {}", run.be->describe());
  if (dist.world_size() > 1) {
    spdlog::info("processes: {} ({} communication), expert-parallel groups of {}", dist.world_size(), run.world->name(),
                 dist.ep_size);
  }
  spdlog::info("batch: {}", run.batch.describe());
  spdlog::info("model: {} parameters, {} active per token", fmt_count(run.pc.total), fmt_count(run.pc.active));
  const AdamW& opt = *run.opt;
  if (opt.sharded()) {
    spdlog::info(
        "optimizer: AdamW moments {} on rank 0, {} unsharded (ZeRO-1: those of dense tensors sharded "
        "over {} rank(s), of expert weights over {})",
        fmt_bytes(static_cast<double>(opt.state_bytes())), fmt_bytes(static_cast<double>(opt.unsharded_state_bytes())),
        dist.world_size(), dist.replica->size());
  } else {
    spdlog::info("optimizer: AdamW moments {} per rank", fmt_bytes(static_cast<double>(opt.state_bytes())));
  }
  spdlog::info("data: {} shard(s), {} tokens, {} windows of {} per epoch; {} tokens per step",
               run.train_data->shards().size(), fmt_count(run.train_data->total_tokens()),
               run.train_data->windows_per_epoch(), run.T, run.tokens_per_step);
  if (run.peak) {
    spdlog::info("MFU against {:g} TFLOP/s per device ({}); {:.4g} FLOPs per token", run.peak->tflops, run.peak->source,
                 run.flops_per_token);
  } else if (run.be->name() == "cuda") {
    spdlog::info(
        "MFU not shown: device '{}' at {} is not in the table of peaks (docs/training.md); "
        "set run.peak_tflops to show it",
        run.be->device_name(), run.cfg.run.precision);
  }
  spdlog::info("run directory: {}{}", run.summary.run_dir,
               run.resume_dir ? fmt::format(" (resuming from step {}: {})", run.state.step, *run.resume_dir) : "");
}

// A checkpoint of the current step (every rank takes part; rank 0 writes it and prunes old ones).
void write_checkpoint(Run& run) {
  run.opt->check_update_flag(run.opt->read_update_flag(), run.state.step);  // never a diverged state
  run.state.train_loader = run.train_data->state();
  run.summary.last_checkpoint =
      save_checkpoint(run.ckpt_root, run.cfg, run.model->store(), &*run.opt, run.state, run.dist);
  if (run.root) {
    prune_checkpoints(run.ckpt_root, run.cfg.checkpoint.keep_last, run.state.step);
    spdlog::info("checkpoint: {}", run.summary.last_checkpoint);
  }
  run.world->barrier();  // the checkpoint is complete before any rank goes on (or exits)
}

// A resumed run whose checkpoint is at or past train.max_steps has nothing to train: it is said so
// (and how to train further), and the run directory is left as it is.
bool already_complete(Run& run) {
  if (!run.resume_dir || run.state.step < run.tc.max_steps) return false;
  run.summary.already_complete = true;
  spdlog::info(
      "the run is already complete: checkpoint {} is at step {}, train.max_steps is {}; "
      "nothing to train",
      *run.resume_dir, run.state.step, run.tc.max_steps);
  return true;
}

// After a phase of the set-up: whether a SIGINT/SIGTERM has arrived on any rank (every rank
// calls it at the same points), and if so the run stops here, before its first step.
bool interrupted_in_setup(Run& run, const char* phase) {
  if (run.options.on_setup_phase) run.options.on_setup_phase(phase);
  if (run.world->all_reduce_sum(run.signals->requested() ? 1.0 : 0.0) == 0) return false;
  run.summary.interrupted = true;
  spdlog::warn("interrupted before training started (after: {}); nothing was trained or written", phase);
  return true;
}

// Everything before the loop, in this order: the output directory check, the resume point,
// processes, the batch, data, the ranks' agreement, model and optimizer, the run directory, the start-up lines and the
// initial checkpoint (if configured). Returns early (summary.already_complete) when there is nothing to do.
void setup_run(Run& run) {
  check_output_dir(run.cfg.run.out_dir, "run.out_dir");
  run.summary.run_dir = run_dir_of(run.cfg);
  check_output_dir(run.summary.run_dir, "the run directory (run.out_dir/run.name)");
  run.ckpt_root = (fs::path(run.summary.run_dir) / "checkpoints").string();
  check_output_dir(run.ckpt_root, "the checkpoint directory (run directory/checkpoints)");
  run.resume_dir = resume_point(run.options, run.summary.run_dir, run.ckpt_root);
  open_processes(run);
  plan_batch(run);
  open_data(run);
  run.tasks = PeriodicTaskEval::from_config(run.cfg);
  check_ranks_agree(run);
  if (interrupted_in_setup(run, "data")) return;
  build_model(run);
  if (already_complete(run) || interrupted_in_setup(run, "model")) return;
  open_run_dir(run);
  run.pc = count_params(run.cfg.model);
  run.tokens_per_step = run.batch.global * run.T;
  run.flops_per_token = train_flops_per_token(run.cfg.model, run.T);
  run.peak = peak_flops(run.be->name(), run.be->device_name(), run.cfg.run.precision, run.cfg.run.peak_tflops);
  run.summary.opt_state_bytes = run.opt->state_bytes();
  log_setup(run);
  if (!run.resume_dir && run.cfg.checkpoint.save_initial) write_checkpoint(run);
}

// The loop's clocks: since its start (for state.elapsed_s) and since the last log line (for tok/s).
struct LoopTimes {
  std::chrono::steady_clock::time_point start;
  double elapsed_before = 0;  // state.elapsed_s when the loop started (resumed runs)
  double interval_s = 0;
  int interval_steps = 0;
};

// One optimizer step, timed, and its bookkeeping.
StepResult run_step(Run& run, LoopTimes& times) {
  const int64_t step = run.state.step;
  const auto t0 = std::chrono::steady_clock::now();
  const StepResult r = train_step(
      *run.model, *run.opt, run.tc, step, run.batch.accum,
      [&](int32_t* in, int32_t* tg) { run.train_data->next(in, tg); }, run.dist);
  // No device synchronisation here: train_step has read its losses and norm back (which waited for
  // the forward and backward passes); the update it queued after that is waited for by the next
  // step's read-back, so over an interval the times add up to the device's.
  const double dt = seconds_since(t0);
  run.state.step = step + 1;
  run.state.tokens += run.tokens_per_step;
  run.state.elapsed_s = times.elapsed_before + seconds_since(times.start);
  run.summary.step_losses.push_back(r.ce);
  run.summary.final_train_loss = r.ce;
  times.interval_s += dt;
  times.interval_steps += 1;
  run.summary.seconds += dt;
  return r;
}

// Time blocked in communication since the last log line (gradient reductions, expert exchanges,
// ZeRO-1's parameter all-gathers), over the three communicators; resets their timers.
Comm::Timing take_comm_timing(const DistContext& dist) {
  Comm::Timing t;
  for (Comm* c : {dist.world, dist.ep, dist.replica}) {
    t.all_reduce_s += c->timing().all_reduce_s;
    t.all_to_all_s += c->timing().all_to_all_s;
    t.all_gather_s += c->timing().all_gather_s;
    c->reset_timing();
  }
  return t;
}

// The log line and metrics.jsonl record of a step, over the interval since the last one (which it
// starts anew). Returns the record's per-layer MoE metrics.
nlohmann::json log_train_step(Run& run, const StepResult& r, LoopTimes& times) {
  const TrainerState& state = run.state;
  const double tps = static_cast<double>(run.tokens_per_step) * times.interval_steps / times.interval_s;
  const double eta = (run.tc.max_steps - state.step) * times.interval_s / times.interval_steps;
  const nlohmann::json layers = moe_metrics(*run.model);
  // Each auxiliary loss summed over layers (mean over the interval's micro-batches).
  std::map<std::string, double> aux_by_name;
  for (const auto& l : layers) {
    for (const auto& [k, v] : l.at("aux").items()) aux_by_name[k] += v.get<double>();
  }
  std::string aux_text;
  for (const auto& [k, v] : aux_by_name) aux_text += fmt::format(" | {} {:.4f}", k, v);
  const Comm::Timing comm_time = take_comm_timing(*run.dist);
  if (run.dist->world_size() > 1) {
    aux_text += fmt::format(" | comm {:.0f}+{:.0f}", 1e3 * comm_time.all_reduce_s, 1e3 * comm_time.all_to_all_s);
    if (run.opt->sharded()) aux_text += fmt::format("+{:.0f}", 1e3 * comm_time.all_gather_s);
    aux_text += " ms";
  }
  const bool show_mfu = run.peak.has_value();
  const double mfu_now = show_mfu ? mfu(run.flops_per_token, tps, run.peak->tflops, run.dist->world_size()) : 0.0;
  spdlog::info("step {:>6}/{} | loss {:.4f}{} | lr {:.2e} | gnorm {:.3f} | {} tok/s{} | ETA {}", state.step,
               run.tc.max_steps, r.ce, aux_text, r.lr, r.grad_norm, fmt_count(tps),
               show_mfu ? fmt::format(" | MFU {:.1f}%", 100 * mfu_now) : "", fmt_duration(eta));
  nlohmann::json rec = {{"type", "train"},
                        {"step", state.step},
                        {"loss", r.ce},
                        {"aux", r.aux},
                        {"aux_by_name", aux_by_name},
                        {"lr", r.lr},
                        {"grad_norm", r.grad_norm},
                        {"tokens", state.tokens},
                        {"tokens_per_s", tps},
                        {"elapsed_s", state.elapsed_s},
                        {"comm",
                         {{"all_reduce_s", comm_time.all_reduce_s},
                          {"all_to_all_s", comm_time.all_to_all_s},
                          {"all_gather_s", comm_time.all_gather_s}}},
                        {"moe", layers}};
  if (show_mfu) rec["mfu"] = mfu_now;
  if (run.metrics) run.metrics->write(rec);
  times.interval_s = 0;
  times.interval_steps = 0;
  return layers;
}

// The validation loss at the current step: its log line and metrics.jsonl record.
void evaluate_and_log(Run& run) {
  const EvalResult ev = evaluate(*run.model, *run.val_data, run.eval_batches);
  run.summary.final_val_loss = ev.loss;
  spdlog::info("step {:>6}/{} | val loss {:.4f} | val ppl {:.2f} ({} tokens)", run.state.step, run.tc.max_steps,
               ev.loss, ev.perplexity, ev.tokens);
  if (run.metrics)
    run.metrics->write({{"type", "val"},
                        {"step", run.state.step},
                        {"val_loss", ev.loss},
                        {"val_ppl", ev.perplexity},
                        {"tokens", ev.tokens}});
}

// Steps until train.max_steps, or until a SIGINT/SIGTERM (on any rank) stops the run after the
// current step with a checkpoint. Returns the MoE metrics of the last log record.
nlohmann::json run_loop(Run& run) {
  const Config& cfg = run.cfg;
  const StopSignals& signals = *run.signals;
  LoopTimes times{std::chrono::steady_clock::now(), run.state.elapsed_s};
  for (MoeLayer* l : run.model->moe_layers()) l->reset_stats();
  nlohmann::json last_moe = nlohmann::json::array();  // the MoE metrics of the last log record

  while (run.state.step < run.tc.max_steps) {
    const int64_t step = run.state.step;
    const StepResult r = run_step(run, times);
    const int64_t done = run.state.step;
    const bool last = done == run.tc.max_steps;
    if (run.options.on_step) run.options.on_step(done);
    // Every rank stops at the same step: a signal seen by any rank stops all of them. A signal at
    // the last step stops nothing: the run completes (final eval, checkpoint, summary.json), and
    // says that a stop was asked for (a sweep then stops before its next point).
    const bool requested = run.world->all_reduce_sum(signals.requested() ? 1.0 : 0.0) > 0;
    const bool stopping = requested && !last;
    if (requested && last) run.summary.stop_requested = true;
    if (done % cfg.log.every == 0 || last || stopping || step == run.summary.start_step) {
      last_moe = log_train_step(run, r, times);
    }
    if (run.val_data && ((cfg.eval.every > 0 && done % cfg.eval.every == 0) || last)) evaluate_and_log(run);
    if (run.tasks) run.tasks->maybe_run(*run.model, done, last, run.metrics.get());
    if ((cfg.checkpoint.every > 0 && done % cfg.checkpoint.every == 0) || last || stopping) write_checkpoint(run);
    if (stopping) {
      run.summary.interrupted = true;
      // After write_checkpoint's barrier: rank 0 has written the checkpoint. Rank 0 alone says so.
      if (run.root) {
        spdlog::warn("interrupted at step {}: checkpoint written to {}", done, run.summary.last_checkpoint);
        if (!run.options.command_hint.empty()) spdlog::warn("resume with: {}", run.options.command_hint);
      }
      break;
    }
  }
  return last_moe;
}

// After the loop: the step reached, the mean throughput, and summary.json when the run is complete.
void finish_run(Run& run, const nlohmann::json& last_moe) {
  TrainSummary& summary = run.summary;
  summary.end_step = run.state.step;
  const int64_t steps_run = summary.end_step - summary.start_step;
  if (summary.seconds > 0 && steps_run > 0) {
    summary.tokens_per_s = static_cast<double>(run.tokens_per_step) * steps_run / summary.seconds;
  }
  if (run.root && run.state.step == run.tc.max_steps && !summary.interrupted && steps_run > 0) {
    write_run_summary(summary, run.cfg, run.pc, run.state.tokens, last_moe);
  }
}

}  // namespace

std::string run_dir_of(const Config& cfg) { return (fs::path(cfg.run.out_dir) / cfg.run.name).string(); }

TrainSummary train(const Config& cfg, const TrainOptions& options) {
  Run run(cfg, options);
  const StopSignals signals(options.handle_signals);  // from the set-up on, through the loop
  run.signals = &signals;
  setup_run(run);
  if (run.summary.already_complete || run.summary.interrupted) return std::move(run.summary);
  const nlohmann::json last_moe = run_loop(run);
  finish_run(run, last_moe);
  return std::move(run.summary);
}

}  // namespace am

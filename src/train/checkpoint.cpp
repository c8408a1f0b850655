#include "train/checkpoint.h"

#include "core/bf16.h"
#include "io/atomic_file.h"
#include "io/checkpoint_dir.h"
#include "io/finite_values.h"
#include "io/output_dir.h"
#include "io/safetensors.h"
#include "model/model_info.h"
#include "model/transformer.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>

namespace am {
namespace fs = std::filesystem;
namespace {

// The whole buffer `t` copied to host bytes.
std::vector<char> to_host(Backend& be, Tensor t) {
  std::vector<char> host(t.nbytes());
  be.download(host.data(), t);
  return host;
}

// One safetensors entry per parameter, pointing into `host` (laid out like the table).
std::vector<StEntry> entries(const ParamTable& table, DType dt, const std::vector<char>& host,
                             const std::string& suffix) {
  std::vector<StEntry> out;
  for (const ParamSpec& s : table.specs()) {
    out.push_back(StEntry{s.name + suffix, dt, s.shape, host.data() + static_cast<size_t>(s.offset) * dtype_size(dt)});
  }
  return out;
}

// Tensor `name` of `file` (of `shape`) as host bytes of dtype dt (the store's), converting
// F32 <-> F64.
std::vector<char> read_host(const SafetensorsFile& file, const std::string& name, DType dt,
                            const std::vector<int64_t>& shape) {
  const DType stored = file.info(name).dtype;
  const Tensor probe(nullptr, dt, shape);
  std::vector<char> host(probe.nbytes());
  if (stored == dt) {
    file.copy_to(name, host.data(), dt, shape);
    return host;
  }
  if (stored != DType::F32 && stored != DType::F64) {
    throw UserError(
        fmt::format("{}: tensor {} is {}; checkpoints hold F32 or F64", file.path(), name, dtype_name(stored)));
  }
  AM_CHECK(dt == DType::F32 || dt == DType::F64, "a parameter store of {}", dtype_name(dt));
  const size_t n = static_cast<size_t>(probe.numel());
  if (stored == DType::F64) {  // into F32
    std::vector<double> d(n);
    file.copy_to(name, d.data(), DType::F64, shape);
    const std::vector<float> f(d.begin(), d.end());
    std::memcpy(host.data(), f.data(), host.size());
  } else {  // F32 into F64
    std::vector<float> f(n);
    file.copy_to(name, f.data(), DType::F32, shape);
    const std::vector<double> d(f.begin(), f.end());
    std::memcpy(host.data(), d.data(), host.size());
  }
  return host;
}

// An AdamW moment of `file`, refused (naming file and tensor) when it holds a NaN or an infinity:
// the first step would then report a diverged update, blaming the learning rate.
std::vector<char> read_moment(const SafetensorsFile& file, const std::string& name, DType dt,
                              const std::vector<int64_t>& shape) {
  std::vector<char> host = read_host(file, name, dt, shape);
  refuse_nonfinite({StEntry{name, dt, shape, host.data()}}, file.path(),
                   "the checkpoint holds the optimizer state of a diverged run (or was edited); use an earlier "
                   "checkpoint");
  return host;
}

void check_no_extra(const SafetensorsFile& file, const ParamTable& table, UnusedTensors policy) {
  std::vector<std::string> unused;
  for (const std::string& name : file.names()) {
    if (table.has(name)) continue;
    if (policy == UnusedTensors::Refuse) {
      throw UserError(fmt::format("{}: holds tensor {} that this model does not have", file.path(), name),
                      "the checkpoint was written for a different model config; check model.* keys");
    }
    unused.push_back(name);
  }
  if (!unused.empty() && policy == UnusedTensors::Note) {
    spdlog::info("{}: ignoring {} tensor(s) this model does not use, e.g. {}", file.path(), unused.size(),
                 unused.front());
  }
}

// trainer_state.json of a verified checkpoint, whose step must be the checkpoint's.
TrainerState read_trainer_state(const std::string& dir) {
  const std::string path = (fs::path(dir) / "trainer_state.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(fmt::format("{}: not valid JSON: {}", path, e.what()), "use another checkpoint");
  }
  TrainerState st = trainer_state_from_json(j, path);
  // The manifest's step (verified: an integer, the N of a step_<N> directory) is the checkpoint's.
  const nlohmann::json m = nlohmann::json::parse(read_file((fs::path(dir) / "manifest.json").string()));
  const int64_t step = m.at("step").get<int64_t>();
  if (st.step != step) {
    throw UserError(
        fmt::format("{}: step: {}, but this is the checkpoint of step {} ({}/manifest.json)", path, st.step, step, dir),
        "the checkpoint was edited; use another checkpoint");
  }
  return st;
}

// verify_checkpoint with the files every loader reads (all hashed, or only `hash_only`). A resume
// also reads the optimizer's moments: a checkpoint whose trainer state says it has them must list
// them (one that says it has none gets load_checkpoint's "weights only" error).
void verify_for_loading(const std::string& dir, bool with_optimizer, const std::vector<std::string>& hash_only = {}) {
  const nlohmann::json m =
      verify_checkpoint(dir, {"model.safetensors", "trainer_state.json", "config.resolved.yaml"}, hash_only);
  if (with_optimizer && !m["files"].contains("optimizer.safetensors") && read_trainer_state(dir).has_optimizer) {
    // Fails on the unlisted file, naming it (hashing nothing: manifest.json is never listed).
    verify_checkpoint(dir, {"optimizer.safetensors"}, {"manifest.json"});
  }
}

}  // namespace

// The host bytes `mine` (the values or an AdamW moment of this rank's tensors, laid out like
// `local`) for the whole model, laid out like `full`, on rank 0. With expert parallelism the
// ranks of the first expert-parallel group send rank 0 their experts, in `full`'s order;
// other ranks return nothing.
std::vector<char> gather_full(const ParamTable& full, const ParamTable& local, DType dt, std::vector<char> mine,
                              const DistContext* dist, int n_experts) {
  const int ep = dist ? dist->ep_size : 1;
  if (ep == 1) return mine;  // rank 0 holds the whole model
  const size_t es = dtype_size(dt);
  const int rank = dist->rank(), per_rank = n_experts / ep;
  if (rank >= ep) return {};  // only the first expert-parallel group takes part
  std::vector<char> out(rank == 0 ? static_cast<size_t>(full.total()) * es : 0);
  for (const ParamSpec& sp : full.specs()) {
    const size_t bytes = static_cast<size_t>(sp.numel()) * es;
    if (local.has(sp.name)) {  // dense, or one of this rank's experts
      const ParamSpec& mine_spec = local.at(local.index(sp.name));
      const char* src = mine.data() + static_cast<size_t>(mine_spec.offset) * es;
      if (rank == 0) {
        std::memcpy(out.data() + static_cast<size_t>(sp.offset) * es, src, bytes);
      } else if (sp.expert >= 0) {
        dist->world->send(src, bytes, 0);
      }
    } else if (rank == 0) {  // another rank's expert: ranks of group 0 send in table order
      AM_CHECK(sp.expert >= 0, "dense tensor {} missing on rank 0", sp.name);
      const int owner = sp.expert / per_rank;
      recv_expecting(*dist->world, out.data() + static_cast<size_t>(sp.offset) * es, bytes, owner,
                     fmt::format("checkpoint gather: tensor {} ({} x {})", sp.name, sp.numel(), dtype_name(dt)));
    }
  }
  return out;
}

std::string checkpoint_path(const std::string& root, int64_t step) {
  return (fs::path(root) / checkpoint_dir_name(step)).string();
}

std::string save_checkpoint(const std::string& root, const Config& cfg, const ParamStore& params, const AdamW* opt,
                            const TrainerState& state, const DistContext* dist) {
  Backend& be = params.backend();
  const DType dt = be.dtype();
  // The checkpoint holds the whole model as one process holds it, whatever this run's layout.
  const ParamTable full = dist && dist->ep_size > 1 ? Transformer::full_table(be, cfg.model) : params.table();
  const int n = cfg.model.moe.n_experts;
  const std::vector<char> values = gather_full(full, params.table(), dt, to_host(be, params.all_values()), dist, n);
  std::vector<char> m, v;
  if (opt) {  // a ZeRO-1 optimizer first collects its shards (on the ranks gather_full reads)
    m = gather_full(full, params.table(), dt, opt->gather_moment(AdamW::Moment::M), dist, n);
    v = gather_full(full, params.table(), dt, opt->gather_moment(AdamW::Moment::V), dist, n);
  }
  if (dist && !dist->is_root()) return checkpoint_path(root, state.step);

  // Never a checkpoint that would not load: its weights and moments (on the host here) are finite.
  const std::string refusing = fmt::format("refusing to write the checkpoint of step {}", state.step);
  const char* diverged =
      "the run diverged: lower train.lr or raise train.warmup_steps, and resume from the last "
      "checkpoint with --resume";
  refuse_nonfinite(entries(full, dt, values, ""), refusing, diverged);
  std::vector<StEntry> moments;
  if (opt) {
    moments = entries(full, dt, m, ".exp_avg");
    for (StEntry& e : entries(full, dt, v, ".exp_avg_sq")) moments.push_back(e);
    refuse_nonfinite(moments, refusing + " (optimizer state)", diverged);
  }
  create_output_dir(root, "the checkpoint directory");
  CheckpointWriter w(root, state.step);
  const std::map<std::string, std::string> meta = {{"format", "autonomoe"}, {"step", std::to_string(state.step)}};
  write_safetensors(w.path("model.safetensors"), entries(full, dt, values, ""), meta);
  if (opt) write_safetensors(w.path("optimizer.safetensors"), moments, meta);
  const nlohmann::json st = trainer_state_to_json(state, dtype_name(dt), opt != nullptr);
  write_file_atomic(w.path("trainer_state.json"), st.dump(2) + "\n");
  write_file_atomic(w.path("config.json"), hf_config_json(cfg.model, dt).dump(2) + "\n");
  write_file_atomic(w.path("config.resolved.yaml"), config_to_yaml(cfg));
  return w.commit({{"tokens", state.tokens}});
}

TrainerState load_checkpoint(const std::string& dir, ParamStore& params, AdamW* opt, UnusedTensors unused) {
  verify_for_loading(dir, opt != nullptr);
  Backend& be = params.backend();
  const ParamTable& table = params.table();

  SafetensorsFile model((fs::path(dir) / "model.safetensors").string());
  check_no_extra(model, table, unused);
  for (int i = 0; i < table.size(); ++i) {
    const ParamSpec& s = table.at(i);
    const std::vector<char> host = read_host(model, s.name, be.dtype(), s.shape);
    refuse_nonfinite({StEntry{s.name, be.dtype(), s.shape, host.data()}}, model.path(),
                     "the checkpoint holds the weights of a diverged run; use an earlier checkpoint");
    be.upload(params.value(i), host.data());
  }
  const TrainerState state = read_trainer_state(dir);
  if (opt) {
    if (!state.has_optimizer) {
      throw UserError(fmt::format("checkpoint {} holds weights only (no optimizer state)", dir),
                      "resume from a checkpoint written during training, or start a new run");
    }
    SafetensorsFile moments((fs::path(dir) / "optimizer.safetensors").string());
    for (int i = 0; i < table.size(); ++i) {  // a ZeRO-1 optimizer keeps its shard of each
      const ParamSpec& s = table.at(i);
      opt->set_moment(i, AdamW::Moment::M, read_moment(moments, s.name + ".exp_avg", be.dtype(), s.shape).data());
      opt->set_moment(i, AdamW::Moment::V, read_moment(moments, s.name + ".exp_avg_sq", be.dtype(), s.shape).data());
    }
  }
  return state;
}

Config load_checkpoint_config(const std::string& dir, const std::vector<std::string>& overrides) {
  const fs::path p = fs::path(dir) / "config.resolved.yaml";
  std::error_code ec;
  if (fs::is_directory(dir, ec) && !fs::exists(p, ec) && !fs::exists(fs::path(dir) / "manifest.json", ec)) {
    throw UserError(fmt::format("{} is not a checkpoint: it has no config.resolved.yaml", dir),
                    "pass a directory like runs/<name>/checkpoints/step_00001000");
  }
  verify_for_loading(dir, false, {"config.resolved.yaml"});  // the weights: when they are loaded
  return load_config(p.string(), overrides);
}

void export_weights(const std::string& out_dir, const Config& cfg, const ParamStore& params, const std::string& dtype) {
  Backend& be = params.backend();
  const ParamTable& table = params.table();
  if (dtype != "float32" && dtype != "bfloat16") {
    throw UserError(fmt::format("export dtype '{}' is not supported", dtype), "use float32 or bfloat16");
  }
  create_output_dir(out_dir, "export --out");
  const DType out_dt = dtype == "float32" ? DType::F32 : DType::BF16;
  const std::vector<double> v = download_as_double(be, params.all_values());
  std::vector<char> converted(v.size() * dtype_size(out_dt));
  for (size_t i = 0; i < v.size(); ++i) {
    const float x = static_cast<float>(v[i]);
    if (out_dt == DType::F32) {
      std::memcpy(converted.data() + 4 * i, &x, 4);
    } else {
      const uint16_t b = f32_to_bf16_bits(x);
      std::memcpy(converted.data() + 2 * i, &b, 2);
    }
  }
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), entries(table, out_dt, converted, ""),
                    {{"format", "pt"}});
  write_file_atomic((fs::path(out_dir) / "config.json").string(), hf_config_json(cfg.model, out_dt).dump(2) + "\n");
}

}  // namespace am

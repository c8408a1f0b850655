#include "train/trainer_state.h"

#include "core/error.h"

namespace am {
namespace {

constexpr const char* kFormat = "autonomoe-trainer-state";
constexpr const char* kHint =
    "the checkpoint was not written by this version of autonomoe, or was edited; use another "
    "checkpoint";

[[noreturn]] void bad_key(const std::string& path, const std::string& key, const std::string& why) {
  throw UserError(fmt::format("{}: {}: {}", path, key, why), kHint);
}

const nlohmann::json& need(const nlohmann::json& j, const std::string& path, const char* key) {
  if (!j.contains(key)) bad_key(path, key, "missing");
  return j[key];
}

int64_t count(const nlohmann::json& j, const std::string& path, const char* key) {
  const nlohmann::json& v = need(j, path, key);
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX) || v.get<int64_t>() < 0) {
    bad_key(path, key, fmt::format("expected an integer >= 0, got {}", v.dump()));
  }
  return v.get<int64_t>();
}

}  // namespace

nlohmann::json trainer_state_to_json(const TrainerState& s, const std::string& dtype, bool has_optimizer) {
  return {{"format", kFormat},        {"version", 1},
          {"step", s.step},           {"tokens", s.tokens},
          {"elapsed_s", s.elapsed_s}, {"train_loader", s.train_loader},
          {"dtype", dtype},           {"has_optimizer", has_optimizer}};
}

TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) throw UserError(fmt::format("{}: expected a JSON object, got {}", path, j.type_name()), kHint);
  if (need(j, path, "format") != kFormat) {
    bad_key(path, "format", fmt::format("expected \"{}\", got {}", kFormat, j["format"].dump()));
  }
  if (need(j, path, "version") != 1) {
    bad_key(path, "version", fmt::format("expected 1 (this build's), got {}", j["version"].dump()));
  }
  TrainerState s;
  s.step = count(j, path, "step");
  s.tokens = count(j, path, "tokens");
  const nlohmann::json& e = need(j, path, "elapsed_s");
  if (!e.is_number() || !(e.get<double>() >= 0)) {
    bad_key(path, "elapsed_s", fmt::format("expected a number of seconds >= 0, got {}", e.dump()));
  }
  s.elapsed_s = e.get<double>();
  s.train_loader = need(j, path, "train_loader");
  if (!s.train_loader.is_object()) {
    bad_key(path, "train_loader", fmt::format("expected an object, got {}", s.train_loader.dump()));
  }
  const nlohmann::json& dt = need(j, path, "dtype");
  if (dt != "F32" && dt != "F64") {  // the parameter stores this build has (and writes)
    bad_key(path, "dtype", fmt::format("expected \"F32\" or \"F64\", got {}", dt.dump()));
  }
  const nlohmann::json& h = need(j, path, "has_optimizer");
  if (!h.is_boolean()) bad_key(path, "has_optimizer", fmt::format("expected true or false, got {}", h.dump()));
  s.has_optimizer = h.get<bool>();
  return s;
}

}  // namespace am

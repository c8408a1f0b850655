#include "data/dataset_meta.h"

#include <glob.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/regular_file.h"

namespace am {

namespace fs = std::filesystem;

std::string DatasetMeta::dir() const {
  const fs::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

std::string DatasetMeta::tokenizer_path() const { return (fs::path(dir()) / tokenizer).string(); }

static nlohmann::ordered_json split_to_json(const SplitMeta& s) {
  return {{"shards", s.shards}, {"tokens", s.tokens}, {"documents", s.documents}};
}

nlohmann::ordered_json dataset_meta_to_json(const DatasetMeta& m) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["format"] = kDatasetFormat;
  j["version"] = kDatasetVersion;
  j["vocab_size"] = m.vocab_size;
  j["eot_token"] = m.eot_token;
  j["tokenizer"] = m.tokenizer;
  j["train"] = split_to_json(m.train);
  j["val"] = split_to_json(m.val);
  j["unigram_entropy_nats"] = m.unigram_entropy_nats;
  for (const auto& [k, v] : m.extra.items()) {
    if (!j.contains(k)) j[k] = v;
  }
  return j;
}

namespace {

// Small typed accessors whose errors name the file and the dotted key.
struct Reader {
  const std::string& path;

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    throw UserError(fmt::format("{}: key \"{}\": {}", path, key, what),
                    "dataset.json is written by `autonomoe-data encode`; re-run it to regenerate");
  }
  const nlohmann::json& get(const nlohmann::json& obj, const std::string& prefix, const char* key) const {
    const std::string full = prefix.empty() ? key : prefix + "." + key;
    if (!obj.contains(key)) bad(full, "missing");
    return obj.at(key);
  }
  int64_t integer(const nlohmann::json& obj, const std::string& prefix, const char* key, int64_t min) const {
    const auto& v = get(obj, prefix, key);
    const std::string full = prefix.empty() ? key : prefix + "." + key;
    if (!v.is_number_integer()) bad(full, fmt::format("expected an integer, got {}", v.dump()));
    const int64_t x = v.get<int64_t>();
    if (x < min) bad(full, fmt::format("must be >= {}, got {}", min, x));
    return x;
  }
  std::string string(const nlohmann::json& obj, const std::string& prefix, const char* key) const {
    const auto& v = get(obj, prefix, key);
    if (!v.is_string()) {
      bad(prefix.empty() ? key : prefix + "." + key, fmt::format("expected a string, got {}", v.dump()));
    }
    return v.get<std::string>();
  }
  SplitMeta split(const nlohmann::json& obj, const char* key) const {
    const auto& s = get(obj, "", key);
    if (!s.is_object()) bad(key, fmt::format("expected an object, got {}", s.dump()));
    SplitMeta m;
    const auto& shards = get(s, key, "shards");
    if (!shards.is_array()) {
      bad(std::string(key) + ".shards", "expected a list of shard file names");
    }
    for (const auto& x : shards) {
      if (!x.is_string()) bad(std::string(key) + ".shards", "expected a list of shard file names");
      m.shards.push_back(x.get<std::string>());
    }
    m.tokens = integer(s, key, "tokens", 0);
    m.documents = integer(s, key, "documents", 0);
    return m;
  }
};

}  // namespace

DatasetMeta dataset_meta_from_json(const nlohmann::json& j, const std::string& path) {
  Reader r{path};
  if (!j.is_object()) {
    throw UserError(fmt::format("{}: expected a JSON object, got {}", path, j.type_name()));
  }
  const std::string format = r.string(j, "", "format");
  if (format != kDatasetFormat) {
    r.bad("format", fmt::format("expected \"{}\", got \"{}\"", kDatasetFormat, format));
  }
  const int64_t version = r.integer(j, "", "version", 0);
  if (version != kDatasetVersion) {
    r.bad("version", fmt::format("unsupported version {} (this build reads {})", version, kDatasetVersion));
  }
  DatasetMeta m;
  m.vocab_size = r.integer(j, "", "vocab_size", 1);
  m.eot_token = static_cast<int32_t>(r.integer(j, "", "eot_token", 0));
  if (m.eot_token >= m.vocab_size) {
    r.bad("eot_token", fmt::format("{} is outside the vocabulary [0, {})", m.eot_token, m.vocab_size));
  }
  m.tokenizer = r.string(j, "", "tokenizer");
  m.train = r.split(j, "train");
  m.val = r.split(j, "val");
  const auto& h = r.get(j, "", "unigram_entropy_nats");
  if (!h.is_number() || h.get<double>() < 0) {
    r.bad("unigram_entropy_nats", fmt::format("expected a number >= 0, got {}", h.dump()));
  }
  m.unigram_entropy_nats = h.get<double>();
  for (const auto& [k, v] : j.items()) {
    static const char* known[] = {"format",    "version", "vocab_size", "eot_token",
                                  "tokenizer", "train",   "val",        "unigram_entropy_nats"};
    if (std::find_if(std::begin(known), std::end(known), [&](const char* s) { return k == s; }) == std::end(known)) {
      m.extra[k] = v;
    }
  }
  m.path = path;
  return m;
}

DatasetMeta read_dataset_meta_file(const std::string& path) {
  const std::string text = read_regular_file(path, "dataset description");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(fmt::format("{}: not valid JSON: {}", path, e.what()),
                    "dataset.json is written by `autonomoe-data encode`; re-run it to regenerate");
  }
  return dataset_meta_from_json(j, path);
}

void write_dataset_meta(const std::string& dir, const DatasetMeta& m) {
  const std::string path = (fs::path(dir) / "dataset.json").string();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) fail("{}: cannot create", tmp);
    out << dataset_meta_to_json(m).dump(2) << "\n";
    out.flush();
    if (!out) fail("{}: write failed", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("{}: cannot rename {} into place", path, tmp);
  }
}

std::vector<std::string> glob_sorted(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  if (rc != 0 && rc != GLOB_NOMATCH) fail("{}: cannot expand the pattern (glob error {})", pattern, rc);
  std::sort(out.begin(), out.end());  // byte order, independent of the locale
  return out;
}

std::optional<DatasetMeta> read_dataset_meta(const std::string& shard_glob) {
  const auto matches = glob_sorted(shard_glob);
  if (matches.empty()) return std::nullopt;
  const fs::path first(matches.front());
  const fs::path meta = (first.has_parent_path() ? first.parent_path() : fs::path(".")) / "dataset.json";
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(meta, ec))) return std::nullopt;  // absent (a link to nothing is not)
  if (!fs::exists(fs::status(meta, ec)) && fs::is_symlink(fs::symlink_status(meta))) {
    fail("dataset description '{}' is a symbolic link that leads to no file: {}", meta.string(), ec.message());
  }
  return read_dataset_meta_file(meta.string());
}

}  // namespace am

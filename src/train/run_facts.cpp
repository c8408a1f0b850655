#include "train/run_facts.h"

#include "core/error.h"
#include "io/checksum.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace am {
namespace fs = std::filesystem;
namespace {

constexpr std::streamoff kSample = 4096;

// Up to kSample bytes of `f` from `offset`.
std::string read_sample(std::ifstream& f, const std::string& path, std::streamoff offset, std::streamoff size) {
  std::string s(static_cast<size_t>(std::min(kSample, size - offset)), '\0');
  f.seekg(offset);
  f.read(s.data(), static_cast<std::streamsize>(s.size()));
  if (!f) throw UserError(fmt::format("{}: could not read {} bytes at offset {}", path, s.size(), offset));
  return s;
}

// The checkpoint resumed from, with the hash of its manifest (which lists every file's checksum).
std::string resume_fact(const std::optional<std::string>& dir) {
  if (!dir) return "nothing (a fresh run)";
  const fs::path manifest = fs::path(*dir) / "manifest.json";
  std::error_code ec;
  if (!fs::is_regular_file(manifest, ec)) return *dir + " (no manifest)";
  return fmt::format("{} (manifest xxh3 {})", *dir, xxh3_file(manifest.string()));
}

void add_files(std::vector<RunFact>& facts, const std::string& key, const DataLoader& data) {
  const std::vector<std::string>& files = data.shards();
  facts.push_back({key + " files", std::to_string(files.size())});
  for (size_t i = 0; i < files.size(); ++i) {
    facts.push_back({fmt::format("{} file {}", key, i + 1), data_file_fact(files[i])});
  }
}

}  // namespace

std::string data_file_fact(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UserError(fmt::format("{}: cannot open the data file", path));
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  std::string sample = read_sample(f, path, 0, size);
  if (size > kSample) sample += read_sample(f, path, std::max(kSample, size - kSample), size);
  return fmt::format("{}: {} bytes, sampled xxh3 {}", path, size, xxh3_hex(sample));
}

std::vector<RunFact> run_facts(const Config& cfg, const std::string& backend, const std::string& comm,
                               const std::optional<std::string>& resume_dir, const DataLoader& train,
                               const DataLoader* val) {
  std::vector<RunFact> facts;
  for (const ResolvedKey& k : cfg.resolved) facts.push_back({k.path, k.value});
  facts.push_back({"backend", backend});
  facts.push_back({"communication", comm});
  facts.push_back({"resume from", resume_fact(resume_dir)});
  add_files(facts, "data.train", train);
  if (val) add_files(facts, "data.val", *val);
  return facts;
}

}  // namespace am

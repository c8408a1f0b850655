#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "io/atomic_file.h"
#include "io/mapped_files.h"
#include "io/regular_file.h"

namespace am {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code copies bytes as they are");

namespace {

using ojson = nlohmann::ordered_json;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr const char* kMetadataKey = "__metadata__";

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diag = up;
    }
  }
  return row[b.size()];
}

// numel * dtype size, or false on overflow / negative dims.
bool byte_size(const std::vector<int64_t>& shape, DType dt, uint64_t* out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  return !__builtin_mul_overflow(n, static_cast<uint64_t>(dtype_size(dt)), out);
}

// The header `text` of the safetensors file `path` as a JSON object; UserError if it is not one
// or if a top-level key appears twice (they would silently shadow each other in the object).
ojson parse_header_json(const std::string& path, const std::string& text) {
  std::set<std::string> keys;
  std::string duplicate;
  ojson::parser_callback_t cb = [&](int depth, ojson::parse_event_t ev, ojson& parsed) {
    if (depth == 1 && ev == ojson::parse_event_t::key && parsed.is_string() &&
        !keys.insert(parsed.get<std::string>()).second && duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  ojson h;
  try {
    h = ojson::parse(text, cb);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(fmt::format("safetensors file '{}': header is not valid JSON: {}", path, e.what()),
                    "the file is corrupt or not a safetensors file");
  }
  if (!h.is_object()) fail("safetensors file '{}': header is not a JSON object", path);
  if (!duplicate.empty()) fail("safetensors file '{}': tensor '{}' appears twice in the header", path, duplicate);
  return h;
}

void read_metadata(const std::string& path, const ojson& v, std::map<std::string, std::string>& metadata) {
  if (!v.is_object()) fail("safetensors file '{}': __metadata__ is not an object", path);
  for (const auto& [k, s] : v.items()) {
    if (!s.is_string()) {
      fail("safetensors file '{}': __metadata__ value for '{}' is not a string", path, k);
    }
    metadata[k] = s.get<std::string>();
  }
}

// The header entry `v` of tensor `name`, checked against itself and a data section of
// `data_size` bytes.
StInfo read_tensor_info(const std::string& path, const std::string& name, const ojson& v, size_t data_size) {
  auto bad = [&](const std::string& why) { fail("safetensors file '{}': tensor '{}': {}", path, name, why); };
  if (!v.is_object()) bad("entry is not a JSON object");
  if (!v.contains("dtype") || !v["dtype"].is_string()) bad("missing or non-string \"dtype\"");
  StInfo info;
  std::string dt = v["dtype"].get<std::string>();
  try {
    info.dtype = dtype_from_name(dt);
  } catch (const UserError&) {
    bad(fmt::format("unknown dtype '{}' (this reader knows F32, F64, BF16, I32)", dt));
  }
  if (!v.contains("shape") || !v["shape"].is_array()) bad("missing or non-array \"shape\"");
  for (const auto& d : v["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      bad(fmt::format("shape {} must hold non-negative integers", v["shape"].dump()));
    }
    info.shape.push_back(d.get<int64_t>());
  }
  const auto& off = v.contains("data_offsets") ? v["data_offsets"] : ojson();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
    bad("\"data_offsets\" must be [begin, end] with non-negative integers");
  }
  uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    bad(fmt::format("data_offsets [{}, {}] are outside the data section of {} bytes{}", begin, end, data_size,
                    end > data_size ? " (file truncated?)" : ""));
  }
  uint64_t expect = 0;
  if (!byte_size(info.shape, info.dtype, &expect)) bad("shape overflows");
  if (end - begin != expect) {
    bad(fmt::format("data_offsets [{}, {}] hold {} bytes but dtype {} shape {} needs {}", begin, end, end - begin, dt,
                    shape_to_string(info.shape), expect));
  }
  info.offset = begin;
  info.bytes = end - begin;
  return info;
}

// A tensor's bytes in the data section, and its name.
struct Span {
  uint64_t begin, end;
  const std::string* name;
};

// As in the reference implementation, tensors must tile the data section: no overlap, no gap,
// nothing after the last one.
void check_tiling(const std::string& path, std::vector<Span> spans, size_t data_size) {
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const Span& s : spans) {
    if (s.begin < pos) {
      fail("safetensors file '{}': tensor '{}' [{}, {}] overlaps tensor '{}' (which ends at {})", path, *s.name,
           s.begin, s.end, *prev, pos);
    }
    if (s.begin > pos) {
      fail("safetensors file '{}': {} unused bytes before tensor '{}' at offset {}", path, s.begin - pos, *s.name, pos);
    }
    pos = s.end;
    prev = s.name;
  }
  if (pos != data_size) {
    fail(
        "safetensors file '{}': {} bytes after the last tensor (data section is {} bytes, "
        "tensors cover {})",
        path, data_size - pos, data_size, pos);
  }
}

}  // namespace

int64_t st_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    AM_CHECK(d >= 0, "negative dimension {} in {}", d, shape_to_string(shape));
    n *= d;
  }
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// ---------------------------------------------------------------- writer

void write_safetensors(const std::string& path, const std::vector<StEntry>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  ojson header = ojson::object();
  if (!metadata.empty()) {
    ojson m = ojson::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header[kMetadataKey] = std::move(m);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  std::set<std::string> seen;
  for (const StEntry& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey) {
      fail("cannot write '{}': invalid tensor name '{}'", path, t.name);
    }
    if (!seen.insert(t.name).second) {
      throw UserError(fmt::format("cannot write '{}': duplicate tensor name '{}'", path, t.name),
                      "every tensor in a safetensors file needs a unique name");
    }
    uint64_t bytes = 0;
    AM_CHECK(byte_size(t.shape, t.dtype, &bytes), "tensor '{}': bad shape {}", t.name, shape_to_string(t.shape));
    AM_CHECK(bytes == 0 || t.data != nullptr, "tensor '{}' has no data", t.name);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("cannot write '{}': header is not valid UTF-8 JSON: {}", path, e.what());
  }
  // Pad with spaces so that the data section starts at an 8-byte multiple of the file offset.
  json.append((8 - json.size() % 8) % 8, ' ');
  uint64_t n = json.size();
  unsigned char len_le[8];
  for (int i = 0; i < 8; ++i) len_le[i] = static_cast<unsigned char>(n >> (8 * i));

  AtomicFile f(path);
  f.write(len_le, 8);
  f.write(json.data(), json.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i] > 0) f.write(tensors[i].data, sizes[i]);
  }
  f.commit();
}

// ---------------------------------------------------------------- reader

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const RegularFile f = open_regular_file(path, "safetensors file");
  size_t size = static_cast<size_t>(f.size());
  if (size < 8) {
    throw UserError(fmt::format("safetensors file '{}' is truncated: {} bytes, fewer than the "
                                "8-byte header length",
                                path, size),
                    "the file was not fully written or copied; re-create or re-download it");
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd(), 0);
  int e = errno;  // the mapping keeps the file alive after f closes
  if (m == MAP_FAILED) fail("cannot map safetensors file '{}': {}", path, std::generic_category().message(e));
  map_ = m;
  map_size_ = size;
  register_mapping(map_, map_size_, path, "safetensors file");
  try {
    const auto* bytes = static_cast<const unsigned char*>(map_);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    if (n > kMaxHeaderBytes) {
      fail(
          "safetensors file '{}': header length {} exceeds the limit of {} bytes (not a "
          "safetensors file, or corrupt)",
          path, n, kMaxHeaderBytes);
    }
    if (n > size - 8) {
      throw UserError(fmt::format("safetensors file '{}': header length {} is beyond the end of "
                                  "the file ({} bytes)",
                                  path, n, size),
                      "the file is truncated or not a safetensors file");
    }
    data_section_ = static_cast<const char*>(map_) + 8 + n;
    parse_header(std::string(static_cast<const char*>(map_) + 8, n), size - 8 - n);
  } catch (...) {
    unmap();
    throw;
  }
}

void SafetensorsFile::parse_header(const std::string& text, size_t data_size) {
  const ojson h = parse_header_json(path_, text);
  std::vector<Span> spans;
  for (const auto& [name, v] : h.items()) {
    if (name == kMetadataKey) {
      read_metadata(path_, v, metadata_);
      continue;
    }
    StInfo info = read_tensor_info(path_, name, v, data_size);
    const uint64_t begin = info.offset, end = info.offset + info.bytes;
    auto [it, ok] = infos_.emplace(name, std::move(info));
    names_.push_back(name);
    spans.push_back({begin, end, &it->first});
  }
  check_tiling(path_, std::move(spans), data_size);
}

const StInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it != infos_.end()) return it->second;
  std::string hint = "the file holds no tensors";
  size_t best = SIZE_MAX;
  for (const std::string& n : names_) {
    size_t d = edit_distance(name, n);
    if (d < best) {
      best = d;
      hint = fmt::format("did you mean '{}'? ({} tensors in the file)", n, names_.size());
    }
  }
  throw UserError(fmt::format("safetensors file '{}' has no tensor '{}'", path_, name), hint);
}

const void* SafetensorsFile::data(const std::string& name) const { return data_section_ + info(name).offset; }

void SafetensorsFile::copy_to(const std::string& name, void* dst, DType expected_dtype,
                              const std::vector<int64_t>& expected_shape) const {
  const StInfo& i = info(name);
  if (i.dtype != expected_dtype || i.shape != expected_shape) {
    throw UserError(
        fmt::format("safetensors file '{}': tensor '{}' is {} {}, expected {} {}", path_, name, dtype_name(i.dtype),
                    shape_to_string(i.shape), dtype_name(expected_dtype), shape_to_string(expected_shape)),
        "the file was written for a different model configuration or precision");
  }
  if (i.bytes > 0) std::memcpy(dst, data_section_ + i.offset, i.bytes);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    data_section_ = std::exchange(o.data_section_, nullptr);
    names_ = std::move(o.names_);
    infos_ = std::move(o.infos_);
    metadata_ = std::move(o.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() noexcept {
  if (map_) {
    unregister_mapping(map_);
    ::munmap(map_, map_size_);
  }
  map_ = nullptr;
  map_size_ = 0;
}

}  // namespace am

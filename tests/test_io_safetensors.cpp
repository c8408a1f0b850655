// safetensors: round trips, the on-disk layout checked independently of the reader, a
// hand-built file, and every way the reader must refuse a bad file.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "support/temp_dir.h"

using namespace am;
using test::dir_entries;
using test::TempDir;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A file following the spec: u64 LE header length, header, data.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  write_file_atomic(path, u64_le(header.size()) + header + data);
}

}  // namespace

TEST_CASE("safetensors round trip of dtypes and shapes and empty and scalar tensors and metadata", "[io]") {
  TempDir dir;
  std::vector<float> a = {1.f, -2.f, 3.5f, 0.f, 1e-30f, -7.25f};  // (2, 3)
  std::vector<double> b = {3.141592653589793, -1e300, 2.0, 0.5};  // (4)
  std::vector<uint16_t> c = {0x3f80, 0xc000, 0x7f80};             // BF16 (3): 6 bytes
  std::vector<int32_t> d = {1, -2, 3, 2147483647, -5, 6, 7, 8};   // (2, 2, 2), after 6 bytes
  std::vector<float> one = {42.f};                                // (1)
  std::vector<int32_t> scalar = {-9};                             // ()
  std::vector<StEntry> entries = {{"w.a", DType::F32, {2, 3}, a.data()},    {"w.b", DType::F64, {4}, b.data()},
                                  {"bf", DType::BF16, {3}, c.data()},       {"ids", DType::I32, {2, 2, 2}, d.data()},
                                  {"empty", DType::F32, {0, 5}, nullptr},   {"one", DType::F32, {1}, one.data()},
                                  {"scalar", DType::I32, {}, scalar.data()}};
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "7"}};
  std::string p = dir / "m.safetensors";
  write_safetensors(p, entries, meta);

  SafetensorsFile f(p);
  CHECK(f.path() == p);
  CHECK(f.names() == std::vector<std::string>{"w.a", "w.b", "bf", "ids", "empty", "one", "scalar"});
  CHECK(f.metadata() == meta);
  CHECK(f.info("w.a").dtype == DType::F32);
  CHECK(f.info("w.a").shape == std::vector<int64_t>{2, 3});
  CHECK(f.info("bf").bytes == 6);
  CHECK(f.info("empty").bytes == 0);
  CHECK(f.info("empty").shape == std::vector<int64_t>{0, 5});
  CHECK(f.info("scalar").shape.empty());
  CHECK(f.info("scalar").bytes == 4);
  // Tensors lie back to back in the given order.
  size_t off = 0;
  for (const std::string& n : f.names()) {
    CHECK(f.info(n).offset == off);
    off += f.info(n).bytes;
  }
  std::vector<float> a2(6);
  f.copy_to("w.a", a2.data(), DType::F32, {2, 3});
  CHECK(a2 == a);
  std::vector<double> b2(4);
  f.copy_to("w.b", b2.data(), DType::F64, {4});
  CHECK(b2 == b);
  std::vector<uint16_t> c2(3);
  f.copy_to("bf", c2.data(), DType::BF16, {3});
  CHECK(c2 == c);
  std::vector<int32_t> d2(8);
  f.copy_to("ids", d2.data(), DType::I32, {2, 2, 2});  // data at an odd offset: copied, not cast
  CHECK(d2 == d);
  f.copy_to("empty", nullptr, DType::F32, {0, 5});
  float one2 = 0;
  f.copy_to("one", &one2, DType::F32, {1});
  CHECK(one2 == 42.f);
  CHECK(std::memcmp(f.data("scalar"), scalar.data(), 4) == 0);

  // A moved-from reader hands over the mapping.
  SafetensorsFile g = std::move(f);
  CHECK(std::memcmp(g.data("w.b"), b.data(), 32) == 0);

  // No metadata: no __metadata__ key at all.
  write_safetensors(dir / "nometa.safetensors", {entries[0]});
  CHECK(SafetensorsFile(dir / "nometa.safetensors").metadata().empty());
  CHECK(read_file(dir / "nometa.safetensors").find("__metadata__") == std::string::npos);
}

TEST_CASE("safetensors layout on disk is an aligned space-padded header then raw data", "[io]") {
  TempDir dir;
  std::vector<uint16_t> h = {1, 2, 3};  // 6 bytes
  std::vector<float> w = {0.5f, -1.f};
  std::string p = dir / "x.safetensors";
  write_safetensors(p, {{"h", DType::BF16, {3}, h.data()}, {"w", DType::F32, {1, 2}, w.data()}}, {{"k", "v"}});
  // Parse the file by hand, independently of SafetensorsFile.
  std::string raw = read_file(p);
  REQUIRE(raw.size() >= 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(raw[i])) << (8 * i);
  CHECK((8 + n) % 8 == 0);
  REQUIRE(8 + n <= raw.size());
  std::string header = raw.substr(8, n);
  CHECK(header.front() == '{');
  size_t last = header.find_last_not_of(' ');
  CHECK(header[last] == '}');
  CHECK(header.size() - last - 1 < 8);  // only padding after the JSON
  auto j = nlohmann::json::parse(header);
  CHECK(j["__metadata__"] == nlohmann::json({{"k", "v"}}));
  CHECK(j["h"] == nlohmann::json({{"dtype", "BF16"}, {"shape", {3}}, {"data_offsets", {0, 6}}}));
  CHECK(j["w"] == nlohmann::json({{"dtype", "F32"}, {"shape", {1, 2}}, {"data_offsets", {6, 14}}}));
  CHECK(raw.size() == 8 + n + 14);
  CHECK(raw.substr(8 + n, 6) == bytes_of(h));
  CHECK(raw.substr(8 + n + 6) == bytes_of(w));
}

TEST_CASE("safetensors reader reads a hand-built file that follows the spec", "[io]") {
  TempDir dir;
  // Not padded, keys not sorted, metadata last: all allowed by the format.
  std::string header = R"({"zeta":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("alpha":{"data_offsets":[8,12],"shape":[1,1],"dtype":"I32"},)"
                       R"("__metadata__":{"producer":"hand"}})";
  std::vector<float> z = {1.5f, -2.f};
  std::vector<int32_t> a = {7};
  std::string p = dir / "hand.safetensors";
  write_raw(p, header, bytes_of(z) + bytes_of(a));
  SafetensorsFile f(p);
  CHECK(f.names() == std::vector<std::string>{"zeta", "alpha"});
  CHECK(f.metadata().at("producer") == "hand");
  std::vector<float> z2(2);
  f.copy_to("zeta", z2.data(), DType::F32, {2});
  CHECK(z2 == z);
  int32_t a2 = 0;
  f.copy_to("alpha", &a2, DType::I32, {1, 1});
  CHECK(a2 == 7);
}

TEST_CASE("safetensors reader refuses malformed files naming file and tensor", "[io]") {
  TempDir dir;
  std::string p = dir / "bad.safetensors";
  auto refuses = [&](const std::string& why) {
    INFO(why);
    CHECK_THROWS_AS(SafetensorsFile(p), UserError);
    try {
      SafetensorsFile f(p);
    } catch (const UserError& e) {
      std::string msg = e.what();
      CHECK_THAT(msg, Contains(p));
      return msg;
    }
    return std::string();
  };
  std::string eight(8, 'x');
  const std::string ok_a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  write_file_atomic(p, "abc");
  CHECK_THAT(refuses("shorter than 8 bytes"), Contains("truncated"));
  write_file_atomic(p, u64_le(1000) + "{}");
  CHECK_THAT(refuses("header length beyond the file"), Contains("beyond the end"));
  write_file_atomic(p, u64_le(uint64_t(1) << 40) + "{}");
  CHECK_THAT(refuses("absurd header length"), Contains("exceeds the limit"));
  write_raw(p, "{\"a\": [1, 2", "");
  CHECK_THAT(refuses("bad JSON"), Contains("not valid JSON"));
  write_raw(p, "[1, 2]", "");
  CHECK_THAT(refuses("not an object"), Contains("not a JSON object"));
  write_raw(p, R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "1234");
  CHECK_THAT(refuses("unknown dtype"), Contains("'a'") && Contains("unknown dtype 'F16'"));
  write_raw(p, R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight);
  CHECK_THAT(refuses("negative dim"), Contains("'a'") && Contains("non-negative"));
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", eight);
  CHECK_THAT(refuses("offsets out of range"), Contains("'a'") && Contains("outside the data section"));
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight);
  CHECK_THAT(refuses("begin > end"), Contains("'a'"));
  write_raw(p, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight);
  CHECK_THAT(refuses("size/shape mismatch"), Contains("'a'") && Contains("needs 12"));
  write_raw(p,
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            eight + "1234");
  CHECK_THAT(refuses("overlap"), Contains("overlaps") && Contains("'a'") && Contains("'b'"));
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", eight + "1234");
  CHECK_THAT(refuses("gap"), Contains("unused bytes"));
  write_raw(p, "{" + ok_a + "}", eight + "1234");
  CHECK_THAT(refuses("trailing bytes"), Contains("after the last tensor"));
  write_raw(p, "{" + ok_a + "," + ok_a + "}", eight);
  CHECK_THAT(refuses("duplicate name"), Contains("'a' appears twice"));
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2]}})", eight);
  CHECK_THAT(refuses("no offsets"), Contains("data_offsets"));
  write_raw(p, R"({"__metadata__":{"k":1}})", "");
  CHECK_THAT(refuses("non-string metadata"), Contains("__metadata__"));

  // A valid file cut short inside its data section.
  std::vector<float> v(100, 1.f);
  write_safetensors(p, {{"w", DType::F32, {100}, v.data()}});
  fs::resize_file(p, fs::file_size(p) - 10);
  CHECK_THAT(refuses("truncated data"), Contains("'w'") && Contains("truncated"));
  CHECK_THROWS_WITH(SafetensorsFile(dir / "nope.safetensors"), Contains("nope.safetensors"));
}

TEST_CASE("safetensors copy_to and lookups report mismatches and suggest names", "[io]") {
  TempDir dir;
  std::string p = dir / "m.safetensors";
  std::vector<float> w(6, 1.f), g(4, 2.f);
  write_safetensors(p, {{"model.layers.0.mlp.weight", DType::F32, {2, 3}, w.data()},
                        {"model.norm.weight", DType::F32, {4}, g.data()}});
  SafetensorsFile f(p);
  std::vector<double> dst(6);
  CHECK_THROWS_WITH(
      f.copy_to("model.layers.0.mlp.weight", dst.data(), DType::F64, {2, 3}),
      Contains(p) && Contains("model.layers.0.mlp.weight") && Contains("F32 [2, 3], expected F64 [2, 3]"));
  CHECK_THROWS_WITH(f.copy_to("model.layers.0.mlp.weight", dst.data(), DType::F32, {3, 2}),
                    Contains("F32 [2, 3], expected F32 [3, 2]"));
  CHECK_FALSE(f.has("model.layers.0.mlp.weigth"));
  CHECK(f.has("model.norm.weight"));
  CHECK_THROWS_WITH(f.info("model.layers.0.mlp.weigth"), Contains(p) &&
                                                             Contains("no tensor 'model.layers.0.mlp.weigth'") &&
                                                             Contains("did you mean 'model.layers.0.mlp.weight'"));
  CHECK_THROWS_WITH(f.data("model.nrom.weight"), Contains("did you mean 'model.norm.weight'"));
}

TEST_CASE("safetensors writer refuses duplicate names and leaves nothing behind", "[io]") {
  TempDir dir;
  std::vector<float> w(2, 1.f);
  std::string p = dir / "dup.safetensors";
  CHECK_THROWS_WITH(write_safetensors(p, {{"w", DType::F32, {2}, w.data()}, {"w", DType::F32, {2}, w.data()}}),
                    Contains(p) && Contains("duplicate tensor name 'w'"));
  CHECK_THROWS_AS(write_safetensors(p, {{"__metadata__", DType::F32, {2}, w.data()}}), UserError);
  CHECK(fs::is_empty(dir.path()));
  CHECK_THROWS_WITH(write_safetensors(dir / "missing/x.safetensors", {}), Contains("missing/x.safetensors"));
}

// TensorBoard event files (train/tensorboard.h) and their pieces: CRC32C and TFRecord framing
// (io/tfrecord.h), the protobuf wire writer (io/proto_wire.h), the tags of a metrics record, and
// the files of a fresh and a resumed run. tests/tensorboard_check.py decodes a real run's files
// independently (ctest cli_tensorboard).
#include "io/proto_wire.h"
#include "io/regular_file.h"
#include "io/tfrecord.h"
#include "train/metrics.h"
#include "train/tensorboard.h"

#include "support/temp_dir.h"

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>

using namespace am;

namespace {

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& n : test::dir_entries(dir)) {
    if (n.rfind("events.out.tfevents.", 0) == 0) out.push_back(dir + "/" + n);
  }
  return out;
}

// The steps of a file's events after its file_version event (which has none).
std::vector<int64_t> steps_of(const std::string& path) {
  const std::string bytes = read_regular_file(path, "event file");
  const TfRecords r = read_tfrecords(bytes);
  CHECK(r.valid_bytes == bytes.size());
  REQUIRE_FALSE(r.records.empty());
  CHECK(r.records[0].find("brain.Event:2") != std::string::npos);
  CHECK_FALSE(find_varint_field(r.records[0], 2));
  std::vector<int64_t> steps;
  for (size_t i = 1; i < r.records.size(); ++i)
    steps.push_back(static_cast<int64_t>(*find_varint_field(r.records[i], 2)));
  return steps;
}

}  // namespace

TEST_CASE("crc32c and its mask (TFRecord framing)", "[tensorboard]") {
  CHECK(crc32c("123456789") == 0xE3069283u);  // CRC-32C's check value
  CHECK(crc32c("") == 0u);
  const uint32_t c = 0xE3069283u;
  CHECK(masked_crc32c("123456789") == static_cast<uint32_t>(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

TEST_CASE("protobuf wire: fields written, a varint field found again", "[tensorboard]") {
  ProtoWriter w;
  w.varint_field(1, 150);
  CHECK(w.bytes() == std::string("\x08\x96\x01", 3));  // the encoding guide's example
  ProtoWriter m;
  m.double_field(1, 2.5);
  m.bytes_field(3, "xyz");
  m.float_field(4, 1.0f);
  m.varint_field(2, 300);
  CHECK(m.bytes().size() == 9 + 5 + 5 + 3);
  CHECK(find_varint_field(m.bytes(), 2) == std::optional<uint64_t>(300));
  CHECK_FALSE(find_varint_field(m.bytes(), 5));
  CHECK_FALSE(find_varint_field(m.bytes().substr(0, 12), 2));  // cut inside the string
}

TEST_CASE("tfrecord: records read back, up to a cut-short or damaged one", "[tensorboard]") {
  const std::string a = tfrecord_frame("first"), b = tfrecord_frame(std::string(300, 'b'));
  CHECK(a.size() == 16 + 5);
  TfRecords r = read_tfrecords(a + b);
  CHECK(r.records == std::vector<std::string>{"first", std::string(300, 'b')});
  CHECK(r.valid_bytes == a.size() + b.size());
  r = read_tfrecords(a + b.substr(0, b.size() - 1));  // a crash while appending
  CHECK(r.records == std::vector<std::string>{"first"});
  CHECK(r.valid_bytes == a.size());
  std::string damaged = a + b;
  damaged[a.size() + 20] ^= 1;  // one bit of the second record's data
  CHECK(read_tfrecords(damaged).records.size() == 1);
  damaged = a + b;
  damaged[a.size()] ^= 1;  // its length
  CHECK(read_tfrecords(damaged).records.size() == 1);
}

TEST_CASE("tensorboard_scalars: the tags of a metrics record", "[tensorboard]") {
  const auto rec = nlohmann::json::parse(R"({"type": "train", "step": 7, "loss": 3.5, "lr": 0.001,
      "aux_by_name": {"load_balance": 0.25}, "note": "text", "flag": true,
      "moe": [{"ent_load": 1.25, "load": [0.5, 0.5], "aux": {"z": 0.125}}, {"ent_load": 1.5}]})");
  std::map<std::string, double> got;
  for (const auto& [tag, v] : tensorboard_scalars(rec)) got[tag] = v;
  const std::map<std::string, double> want = {{"train/loss", 3.5},
                                              {"train/lr", 0.001},
                                              {"train.aux_by_name/load_balance", 0.25},
                                              {"train.moe/0/ent_load", 1.25},
                                              {"train.moe/0/aux/z", 0.125},
                                              {"train.moe/1/ent_load", 1.5}};
  CHECK(got == want);
  got.clear();
  for (const auto& [tag, v] : tensorboard_scalars(
           nlohmann::json::parse(R"({"type": "val", "step": 4, "val_loss": 2.5, "val_ppl": 12.0, "tokens": 64})"))) {
    got[tag] = v;
  }
  CHECK(got == std::map<std::string, double>{{"val/loss", 2.5}, {"val/ppl", 12.0}, {"val/tokens", 64}});
  CHECK(tensorboard_scalars(nlohmann::json::parse(R"({"step": 1, "loss": 2})")).empty());
  CHECK(tensorboard_scalars(nlohmann::json::parse(R"({"type": "train", "loss": 2})")).empty());
}

TEST_CASE("TensorBoardLog: a fresh run starts anew, a resume cuts back to its step", "[tensorboard]") {
  test::TempDir d;
  const std::string dir = d.file("run/tensorboard");
  auto rec = [](int64_t step) { return nlohmann::json{{"type", "train"}, {"step", step}, {"loss", 1.0 / step}}; };
  {
    TensorBoardLog tb(dir, -1);
    for (int64_t s = 1; s <= 5; ++s) tb.write(rec(s));
    tb.write({{"type", "train"}, {"step", 6}, {"note", "no numbers"}});  // nothing to write
  }
  std::vector<std::string> files = event_files(dir);
  REQUIRE(files.size() == 1);
  CHECK(steps_of(files[0]) == std::vector<int64_t>{1, 2, 3, 4, 5});

  // A crash's half-written record at the end, then a resume from step 3.
  {
    std::ofstream f(files[0], std::ios::app | std::ios::binary);
    f << tfrecord_frame("cut short").substr(0, 10);
  }
  {
    TensorBoardLog tb(dir, 3);
    for (int64_t s = 4; s <= 6; ++s) tb.write(rec(s));
  }
  files = event_files(dir);
  REQUIRE(files.size() == 2);
  CHECK(steps_of(files[0]) == std::vector<int64_t>{1, 2, 3});
  CHECK(steps_of(files[1]) == std::vector<int64_t>{4, 5, 6});

  TensorBoardLog fresh(dir, -1);  // a fresh run in the same directory: the old files go
  files = event_files(dir);
  REQUIRE(files.size() == 1);
  CHECK(files[0] == fresh.path());
  CHECK(steps_of(files[0]).empty());
}

// An event file that cannot grow (the file-size limit, EFBIG, with SIGXFSZ ignored): the write
// that fails is a warning, the TensorBoard copy ends, and metrics.jsonl goes on with every record.
// (The event records here are larger than the JSON lines, so the event file reaches the limit first.)
TEST_CASE("MetricsLog: an event file that cannot be written never costs a metrics record", "[tensorboard]") {
  test::TempDir d;
  MetricsLog log(d.file("metrics.jsonl"), -1);
  log.mirror_to(std::make_unique<TensorBoardLog>(d.file("tensorboard"), -1));
  const std::string event_file = event_files(d.file("tensorboard")).at(0);
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 2000;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  int written = 0;
  try {
    for (; written < 45; ++written) {
      log.write({{"type", "train"}, {"step", written + 1}, {"loss", 1.5}});
    }
  } catch (...) {}
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK(written == 45);
  std::ifstream in(d.file("metrics.jsonl"));
  int lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  CHECK(lines == 45);
  const std::string bytes = read_regular_file(event_file, "event file");
  const TfRecords recs = read_tfrecords(bytes);
  CHECK(bytes.size() <= 2000);
  CHECK(recs.records.size() > 10);                              // it wrote until the limit ...
  CHECK(recs.records.size() < 45);                              // ... and no further
  log.write({{"type", "train"}, {"step", 46}, {"loss", 1.5}});  // after the limit is lifted: no event file
  CHECK(read_regular_file(event_file, "event file") == bytes);
}

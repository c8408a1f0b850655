#include <catch2/catch.hpp>
#include <filesystem>

#include "core/error.h"
#include "data/dataset_meta.h"
#include "data/shard.h"
#include "data/split_writer.h"
#include "test_data_util.h"

using namespace am;
using am::test::TempDir;
using am::test::user_error;

TEST_CASE("shards: uint16 round trip matches the byte layout of the format", "[data]") {
  TempDir d;
  const std::string p = d.file("a.bin");
  const std::vector<int32_t> toks = {0, 1, 65535, 300, 7};
  write_shard(p, toks, 65536);  // fits uint16
  CHECK(test::read_bytes(p) == test::raw_shard(20240520, 1, 5, {0, 1, 65535, 300, 7}, 2));
  ShardReader r(p);
  CHECK(r.n_tokens() == 5);
  CHECK(r.token_bytes() == 2);
  CHECK(r.version() == 1);
  std::vector<int32_t> back(5);
  r.read(0, 5, back.data());
  CHECK(back == toks);
  CHECK(r.at(2) == 65535u);
  CHECK_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST_CASE("shards: uint32 round trip for vocabularies above 65536", "[data]") {
  TempDir d;
  const std::string p = d.file("b.bin");
  const std::vector<int32_t> toks = {65536, 3, 99999, 0};
  write_shard(p, toks, 100000);
  CHECK(test::read_bytes(p) == test::raw_shard(20240801, 7, 4, {65536, 3, 99999, 0}, 4));
  ShardReader r(p);
  CHECK(r.token_bytes() == 4);
  CHECK(r.version() == 7);
  std::vector<int32_t> back(2);
  r.read(1, 2, back.data());
  CHECK(back == std::vector<int32_t>{3, 99999});
}

TEST_CASE("shards: a writer that is not closed leaves no file behind", "[data]") {
  TempDir d;
  const std::string p = d.file("c.bin");
  {
    ShardWriter w(p, 100);
    w.write({1, 2, 3});
    CHECK(std::filesystem::exists(p + ".tmp"));
    CHECK_FALSE(std::filesystem::exists(p));
  }
  CHECK_FALSE(std::filesystem::exists(p));
  CHECK_FALSE(std::filesystem::exists(p + ".tmp"));
  // Fewer than 2 tokens cannot make a shard.
  ShardWriter w(p, 100);
  w.write({1});
  CHECK_THROWS_AS(w.close(), UserError);
  CHECK_FALSE(std::filesystem::exists(p));
}

TEST_CASE("shards: every validation error is a UserError naming the file", "[data]") {
  TempDir d;
  auto check = [&](const std::string& name, const std::vector<uint8_t>& bytes, const std::string& expect) {
    const std::string p = d.file(name);
    test::write_bytes(p, bytes);
    const std::string msg = user_error([&] { ShardReader r(p); });
    INFO(msg);
    CHECK(msg.find(p) != std::string::npos);
    CHECK(msg.find(expect) != std::string::npos);
  };
  check("magic.bin", test::raw_shard(12345, 1, 3, {1, 2, 3}, 2),
        "not a token shard: magic 12345 (expected 20240520 or 20240801)");
  check("version16.bin", test::raw_shard(20240520, 7, 3, {1, 2, 3}, 2), "unknown token shard version 7");
  check("version32.bin", test::raw_shard(20240801, 1, 3, {1, 2, 3}, 4), "unknown token shard version 1");
  check("truncated.bin", test::raw_shard(20240520, 1, 5, {1, 2, 3}, 2),
        "truncated: header says 5 tokens = 1034 bytes, file has 1030");
  check("longer.bin", test::raw_shard(20240801, 7, 2, {1, 2, 3}, 4), "size mismatch");
  check("one_token.bin", test::raw_shard(20240520, 1, 1, {1}, 2), "has 1 tokens");
  check("negative.bin", test::raw_shard(20240520, 1, -4, {}, 2), "negative token count");
  check("short.bin", std::vector<uint8_t>(100, 0), "too short");
  check("empty.bin", {}, "too short");
  const std::string missing = d.file("missing.bin");
  CHECK(user_error([&] { ShardReader r(missing); }).find(missing) != std::string::npos);
}

TEST_CASE("split writer: shards of shard_tokens tokens, never a 1-token tail", "[data]") {
  TempDir d;
  auto sizes = [&](int64_t total, int64_t per_shard) {
    SplitWriter w(d.str(), "t" + std::to_string(total), "train", 1000, per_shard);
    std::vector<int32_t> toks(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i) toks[static_cast<size_t>(i)] = static_cast<int32_t>(i % 1000);
    // Feed in uneven pieces to exercise the boundaries.
    size_t at = 0, piece = 1;
    while (at < toks.size()) {
      const size_t n = std::min(piece, toks.size() - at);
      w.write(toks.data() + at, n);
      at += n;
      piece = piece % 7 + 1;
    }
    std::vector<int64_t> out;
    std::vector<int32_t> all;
    for (const auto& f : w.finish()) {
      ShardReader r((std::filesystem::path(d.str()) / f).string());
      out.push_back(r.n_tokens());
      std::vector<int32_t> part(static_cast<size_t>(r.n_tokens()));
      r.read(0, r.n_tokens(), part.data());
      all.insert(all.end(), part.begin(), part.end());
    }
    CHECK(all == toks);  // nothing lost, order kept
    return out;
  };
  CHECK(sizes(25, 10) == std::vector<int64_t>{10, 10, 5});
  CHECK(sizes(21, 10) == std::vector<int64_t>{10, 11});
  CHECK(sizes(20, 10) == std::vector<int64_t>{10, 10});
  CHECK(sizes(22, 10) == std::vector<int64_t>{10, 10, 2});
  CHECK(sizes(3, 10) == std::vector<int64_t>{3});
  CHECK(shard_file_name("brown", "val", 12) == "brown_val_000012.bin");
}

TEST_CASE("dataset.json: round trip, absent file, and errors naming file and key", "[data]") {
  TempDir d;
  DatasetMeta m;
  m.vocab_size = 4096;
  m.eot_token = 2;
  m.tokenizer = "tok.model";
  m.train = {{"x_train_000000.bin"}, 1000, 10};
  m.val = {{"x_val_000000.bin"}, 100, 1};
  m.unigram_entropy_nats = 5.5;
  m.extra = {{"note", "hi"}};
  write_dataset_meta(d.str(), m);
  write_shard(d.file("x_train_000000.bin"), {1, 2, 3}, 4096);

  const auto got = read_dataset_meta(d.file("x_train_*.bin"));
  REQUIRE(got.has_value());
  CHECK(got->vocab_size == 4096);
  CHECK(got->eot_token == 2);
  CHECK(got->train.shards == m.train.shards);
  CHECK(got->train.tokens == 1000);
  CHECK(got->val.documents == 1);
  CHECK(got->unigram_entropy_nats == 5.5);
  CHECK(got->extra["note"] == "hi");
  CHECK(got->tokenizer_path() == d.file("tok.model"));

  // No match, or shards without dataset.json (plain llm.c shards): nullopt.
  CHECK_FALSE(read_dataset_meta(d.file("nothing_*.bin")).has_value());
  TempDir plain;
  write_shard(plain.file("p_000000.bin"), {1, 2, 3}, 10);
  CHECK_FALSE(read_dataset_meta(plain.file("p_*.bin")).has_value());

  const std::string path = d.file("dataset.json");
  auto broken = [&](const std::string& text) {
    test::write_text(path, text);
    return user_error([&] { read_dataset_meta(d.file("x_train_*.bin")); });
  };
  nlohmann::json good = nlohmann::json::parse(dataset_meta_to_json(m).dump());
  auto with = [&](const std::string& key, const nlohmann::json& v) {
    nlohmann::json j = good;
    if (v.is_null()) {
      j.erase(key);
    } else {
      j[key] = v;
    }
    return j.dump();
  };
  std::string msg = broken("{ not json");
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("not valid JSON") != std::string::npos);
  msg = broken(with("vocab_size", nullptr));
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("\"vocab_size\": missing") != std::string::npos);
  msg = broken(with("vocab_size", "big"));
  CHECK(msg.find("\"vocab_size\": expected an integer") != std::string::npos);
  msg = broken(with("format", "other"));
  CHECK(msg.find("\"format\"") != std::string::npos);
  msg = broken(with("eot_token", 5000));
  CHECK(msg.find("\"eot_token\"") != std::string::npos);
  nlohmann::json j = good;
  j["train"].erase("tokens");
  msg = broken(j.dump());
  CHECK(msg.find("\"train.tokens\": missing") != std::string::npos);
  j = good;
  j["val"]["shards"] = 3;
  msg = broken(j.dump());
  CHECK(msg.find("\"val.shards\"") != std::string::npos);
  msg = broken("[1, 2]");
  CHECK(msg.find(path) != std::string::npos);
}

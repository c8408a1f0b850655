// `autonomoe export` includes the tokenizer (train/export_tokenizer.h): the SentencePiece model the
// run's data was encoded with, copied, and the Hugging Face tokenizer config around it.
#include "core/error.h"
#include "data/dataset_meta.h"
#include "data/encode.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"
#include "train/export_tokenizer.h"

#include "test_data_util.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace am;
using am::test::TempDir;

namespace {

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(test::read_bytes(path)); }

// A tokenizer trained on two small texts and a dataset encoded with it, under d/data.
DatasetMeta encoded_dataset(const TempDir& d) {
  test::write_text(d.file("a.txt"), "the cat sat on the mat. the dog ran.\nthe end.\n");
  test::write_text(d.file("b.txt"), "a red house and a big dog.\n");
  TokenizerTrainOptions to;
  to.inputs = {d.file("a.txt"), d.file("b.txt")};
  to.vocab_size = 60;
  to.byte_fallback = false;
  to.character_coverage = 1.0;
  to.model_prefix = d.file("tok");
  train_tokenizer(to);
  EncodeOptions eo;
  eo.tokenizer = d.file("tok.model");
  eo.inputs = to.inputs;
  eo.out_dir = d.file("data");
  eo.name = "t";
  eo.val_fraction = 0;
  return encode_dataset(eo).meta;
}

}  // namespace

TEST_CASE("export_tokenizer: tokenizer.model and the HF tokenizer config, as the dataset defines them", "[export]") {
  TempDir d;
  const DatasetMeta meta = encoded_dataset(d);
  REQUIRE(meta.tokenizer == "tok.model");  // encode copies the model beside the shards
  Config cfg;
  cfg.data.train = d.file("data/t_train_*.bin");
  cfg.model.vocab_size = static_cast<int>(meta.vocab_size);
  cfg.model.max_seq_len = 48;
  const std::string path = find_export_tokenizer(cfg, "");
  CHECK(path == d.file("data/tok.model"));

  std::filesystem::create_directory(d.file("out"));
  test::write_text(d.file("out/config.json"), R"({"model_type": "mixtral", "vocab_size": 7})");
  export_tokenizer(cfg, path, d.file("out"));
  CHECK(test::read_bytes(d.file("out/tokenizer.model")) == test::read_bytes(d.file("data/tok.model")));  // HF's name
  const Tokenizer tok(d.file("out/tokenizer.model"));
  CHECK(tok.encode("the red cat") == Tokenizer(d.file("tok.model")).encode("the red cat"));

  const nlohmann::json tc = read_json(d.file("out/tokenizer_config.json"));
  CHECK(tc.at("tokenizer_class") == "LlamaTokenizer");
  CHECK(tc.at("eos_token") == "</s>");  // the dataset's end-of-text token (id 2)
  CHECK(tc.at("bos_token") == "</s>");  // every training document starts with it
  CHECK(tc.at("unk_token") == "<unk>");
  CHECK(tc.at("pad_token").is_null());
  CHECK(tc.at("add_bos_token") == true);
  CHECK(tc.at("add_eos_token") == false);
  CHECK(tc.at("legacy") == true);
  CHECK(tc.at("model_max_length") == 48);
  const nlohmann::json sm = read_json(d.file("out/special_tokens_map.json"));
  CHECK(sm == nlohmann::json{{"bos_token", "</s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}});
  const nlohmann::json mc = read_json(d.file("out/config.json"));
  CHECK(mc.at("eos_token_id") == meta.eot_token);
  CHECK(mc.at("bos_token_id") == meta.eot_token);
  CHECK(mc.at("model_type") == "mixtral");  // the rest kept
  CHECK(mc.at("vocab_size") == 7);

  // --tokenizer: the file given, checked against the model's vocabulary
  CHECK(find_export_tokenizer(cfg, d.file("tok.model")) == d.file("tok.model"));
  cfg.model.vocab_size += 1;
  const std::string msg = test::user_error([&] { find_export_tokenizer(cfg, ""); });
  CHECK(msg.find("has " + std::to_string(meta.vocab_size) +
                 " pieces but the model's vocabulary (model.vocab_size) has " + std::to_string(meta.vocab_size + 1)) !=
        std::string::npos);
  cfg.model.vocab_size -= 1;
  std::filesystem::remove(d.file("data/tok.model"));
  CHECK(test::user_error([&] { find_export_tokenizer(cfg, ""); }).find("names the tokenizer") != std::string::npos);
}

TEST_CASE("find_export_tokenizer: none for data made without a tokenizer", "[export]") {
  TempDir d;
  write_synthetic_dataset(d.file("syn"), "s", 32, 200, 50, 1);
  Config cfg;
  cfg.data.train = d.file("syn/s_train_*.bin");
  cfg.model.vocab_size = 32;
  CHECK(find_export_tokenizer(cfg, "").empty());
  cfg.data.train = d.file("nothing_*.bin");  // plain shards without dataset.json: none either
  CHECK(find_export_tokenizer(cfg, "").empty());
}

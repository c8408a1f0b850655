// End to end: train a tiny tokenizer, encode a tiny corpus, read the shards back.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset_meta.h"
#include "data/documents.h"
#include "data/encode.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_data_util.h"

using namespace am;
using am::test::TempDir;

namespace {

std::vector<std::string> corpus() {
  const char* words[] = {"the", "cat", "sat", "on",    "a",   "mat",  "dog",  "ran",
                         "to",  "big", "red", "house", "and", "then", "slept"};
  std::vector<std::string> docs;
  for (int d = 0; d < 23; ++d) {
    std::string text;
    for (int s = 0; s < 4 + d % 3; ++s) {
      for (int w = 0; w < 6; ++w) {
        if (w) text += ' ';
        text += words[(d * 7 + s * 5 + w * 3) % 15];
      }
      text += s % 2 ? ".\n" : ". ";
    }
    docs.push_back(text + "doc " + std::to_string(d) + ".");
  }
  return docs;
}

// Tokens of all shards of a split, concatenated.
std::vector<int32_t> read_split(const std::string& dir, const SplitMeta& s) {
  std::vector<int32_t> all;
  for (const auto& f : s.shards) {
    ShardReader r((std::filesystem::path(dir) / f).string());
    std::vector<int32_t> part(static_cast<size_t>(r.n_tokens()));
    r.read(0, r.n_tokens(), part.data());
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

// Splits a token stream at end-of-text tokens: each document must start with one.
std::vector<std::vector<int32_t>> documents_of(const std::vector<int32_t>& toks, int32_t eot) {
  std::vector<std::vector<int32_t>> docs;
  for (int32_t t : toks) {
    if (t == eot) {
      docs.emplace_back();
    } else {
      REQUIRE_FALSE(docs.empty());  // the stream starts with the end-of-text token
      docs.back().push_back(t);
    }
  }
  return docs;
}

}  // namespace

TEST_CASE("encode: tiny corpus end to end (EOT placement, split, shards, entropy)", "[data]") {
  TempDir d;
  const auto docs = corpus();
  {
    std::ofstream f(d.file("corpus.jsonl"));
    for (size_t i = 0; i < docs.size(); ++i) {
      f << nlohmann::json{{"text", docs[i]}, {"id", i}}.dump() << "\n";
      if (i == 5) f << nlohmann::json{{"text", ""}}.dump() << "\n";  // document 6: empty, skipped
    }
  }
  TokenizerTrainOptions to;
  to.inputs = {d.file("corpus.jsonl")};
  to.vocab_size = 100;
  to.byte_fallback = false;
  to.character_coverage = 1.0;
  to.model_prefix = d.file("tiny");
  to.threads = 2;
  const auto tr = train_tokenizer(to);
  CHECK(std::filesystem::exists(d.file("tiny.model")));
  CHECK(tr.vocab_size <= 100);
  const Tokenizer tok(d.file("tiny.model"));
  CHECK(tok.eot_token() == 2);
  CHECK(tok.decode(tok.encode(docs[3])) == docs[3]);

  EncodeOptions eo;
  eo.tokenizer = d.file("tiny.model");
  eo.inputs = {d.file("corpus.jsonl")};
  eo.out_dir = d.file("out");
  eo.name = "tiny";
  eo.val_fraction = 0.2;
  eo.shard_tokens = 97;  // several train shards
  const EncodeResult r = encode_dataset(eo);
  CHECK(r.skipped_documents == 1);

  // dataset.json as the trainer reads it.
  const auto meta = read_dataset_meta(d.file("out/tiny_train_*.bin"));
  REQUIRE(meta.has_value());
  CHECK(meta->vocab_size == tok.vocab_size());
  CHECK(meta->eot_token == 2);
  CHECK(meta->tokenizer == "tiny.model");
  CHECK(std::filesystem::exists(meta->tokenizer_path()));
  CHECK(meta->train.shards.size() > 1);

  // Input documents 0..23 (index 6 the empty one); val iff is_val_document(index, 0.2).
  std::vector<std::string> want_train, want_val;
  int64_t index = 0;
  for (size_t i = 0; i < docs.size(); ++i, ++index) {
    (is_val_document(index, 0.2) ? want_val : want_train).push_back(docs[i]);
    if (i == 5) ++index;  // the empty document takes an index
  }
  CHECK(want_val.size() == 5);  // ceil(24 * 0.2)
  CHECK(meta->train.documents == static_cast<int64_t>(want_train.size()));
  CHECK(meta->val.documents == static_cast<int64_t>(want_val.size()));

  for (const auto& [split, want] : {std::pair{&meta->train, &want_train}, std::pair{&meta->val, &want_val}}) {
    const auto toks = read_split(d.file("out"), *split);
    CHECK(static_cast<int64_t>(toks.size()) == split->tokens);
    CHECK(toks.front() == 2);
    const auto parts = documents_of(toks, 2);
    REQUIRE(parts.size() == want->size());
    for (size_t i = 0; i < parts.size(); ++i) CHECK(tok.decode(parts[i]) == (*want)[i]);
  }
  for (const auto& f : meta->train.shards) {
    ShardReader s(d.file("out/" + f));
    CHECK(s.token_bytes() == 2);
    CHECK(s.n_tokens() <= 98);
  }

  // Unigram entropy of the train tokens, computed here from the shards.
  std::map<int32_t, double> counts;
  const auto train_toks = read_split(d.file("out"), meta->train);
  for (int32_t t : train_toks) counts[t] += 1;
  double h = 0;
  for (const auto& [t, c] : counts)
    h -= c / static_cast<double>(train_toks.size()) * std::log(c / static_cast<double>(train_toks.size()));
  CHECK(meta->unigram_entropy_nats == Approx(h).epsilon(1e-12));

  // Re-encoding with bigger shards removes the earlier run's extra shards; the output is the same
  // token stream.
  eo.shard_tokens = 100000;
  const EncodeResult r2 = encode_dataset(eo);
  CHECK(r2.meta.train.shards == std::vector<std::string>{"tiny_train_000000.bin"});
  CHECK_FALSE(r2.removed_stale.empty());
  CHECK_FALSE(std::filesystem::exists(d.file("out/tiny_train_000001.bin")));
  CHECK(read_split(d.file("out"), r2.meta.train) == train_toks);
}

TEST_CASE("encode: plain-text inputs, zero val fraction, and errors", "[data]") {
  TempDir d;
  test::write_text(d.file("a.txt"), "the cat sat on the mat. the dog ran.\nthe end.\n");
  test::write_text(d.file("b.txt"), "a red house and a big dog.\n");
  TokenizerTrainOptions to;
  to.inputs = {d.file("a.txt"), d.file("b.txt")};
  to.vocab_size = 60;
  to.byte_fallback = false;
  to.character_coverage = 1.0;
  to.model_prefix = d.file("t");
  train_tokenizer(to);

  EncodeOptions eo;
  eo.tokenizer = d.file("t.model");
  eo.inputs = {d.file("a.txt"), d.file("b.txt")};
  eo.out_dir = d.str();
  eo.name = "p";
  eo.val_fraction = 0;
  const EncodeResult r = encode_dataset(eo);
  CHECK(r.meta.train.documents == 2);  // one document per plain-text file
  CHECK(r.meta.val.documents == 0);
  CHECK(r.meta.val.shards.empty());
  const Tokenizer tok(d.file("t.model"));
  const auto toks = read_split(d.str(), r.meta.train);
  const auto parts = documents_of(toks, tok.eot_token());
  REQUIRE(parts.size() == 2);
  CHECK(tok.decode(parts[0]) == "the cat sat on the mat. the dog ran.\nthe end.\n");

  // Everything in val leaves no training document.
  eo.inputs = {d.file("a.txt")};
  eo.val_fraction = 0.5;
  CHECK_THROWS_AS(encode_dataset(eo), UserError);
  eo.inputs = {d.file("missing.jsonl")};
  try {
    encode_dataset(eo);
    FAIL("no error for a missing input");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find(d.file("missing.jsonl")) != std::string::npos);
  }
  eo.tokenizer = d.file("none.model");
  CHECK_THROWS_AS(encode_dataset(eo), UserError);
}

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/brown.h"
#include "data/documents.h"
#include "test_data_util.h"

using namespace am;
using am::test::TempDir;

TEST_CASE("brown: tags are stripped at the last slash", "[data]") {
  CHECK(brown_strip_tag("The/at") == "The");
  CHECK(brown_strip_tag("1-1/2/cd") == "1-1/2");
  CHECK(brown_strip_tag("//in") == "/");
  CHECK(brown_strip_tag("Atlanta's/np$") == "Atlanta's");
  CHECK(brown_strip_tag("plain") == "plain");
  CHECK(is_brown_corpus_file("ca01"));
  CHECK(is_brown_corpus_file("cr09"));
  CHECK_FALSE(is_brown_corpus_file("cs01"));
  CHECK_FALSE(is_brown_corpus_file("cats.txt"));
  CHECK_FALSE(is_brown_corpus_file("README"));
  CHECK_FALSE(is_brown_corpus_file("ca1"));
}

TEST_CASE("brown: tagged sentences become readable paragraphs", "[data]") {
  const std::string tagged =
      "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( 1/cd )/) "
      "that/cs 1-1/2/cd miles/nns ;/. ok/uh ?/. !/. :/: --/-- yes/rb ./.\n\n\n"
      "\tIt/pps urged/vbd ./.\n"
      "Wards/nns-hl protected/vbn-hl \n"
      "The/at jury/nn said/vbd '/' pro/jj '/' and/cc '/' con/jj '/' ./.\n\n";
  const BrownText t = brown_detokenize(tagged);
  CHECK(t.text ==
        "The Fulton jury said \"no evidence\", (1) that 1-1/2 miles; ok?!: -- yes.\n\n"
        "It urged. Wards protected\n"
        "The jury said 'pro' and 'con'.");
  CHECK(t.words == 23 + 3 + 2 + 11);
  CHECK(brown_detokenize("\n\n").text.empty());
}

TEST_CASE("brown: a directory becomes one JSONL document per corpus file", "[data]") {
  TempDir d;
  test::write_text(d.file("cb02"), "\tSecond/od ./.\n");
  test::write_text(d.file("ca01"), "\tFirst/od ./.\n\n\tMore/ap ./.\n");
  test::write_text(d.file("README"), "not/xx corpus/yy\n");
  test::write_text(d.file("cats.txt"), "ca01 news\n");
  test::write_text(d.file("package.json"), "{}\n");
  const std::string out = d.file("brown.jsonl");
  const BrownSummary s = brown_to_jsonl(d.str(), out);
  CHECK(s.documents == 2);
  CHECK(s.words == 6);
  std::ifstream in(out);
  std::string line;
  std::vector<nlohmann::json> docs;
  while (std::getline(in, line)) docs.push_back(nlohmann::json::parse(line));
  REQUIRE(docs.size() == 2);
  CHECK(docs[0]["id"] == "ca01");
  CHECK(docs[0]["text"] == "First.\n\nMore.");
  CHECK(docs[1]["id"] == "cb02");
  CHECK(docs[1]["text"] == "Second.");

  TempDir empty;
  test::write_text(empty.file("README"), "x");
  CHECK_THROWS_AS(brown_to_jsonl(empty.str(), empty.file("o.jsonl")), UserError);
  CHECK_THROWS_AS(brown_to_jsonl(d.file("missing"), d.file("o.jsonl")), UserError);
}

TEST_CASE("train/val split by document index", "[data]") {
  // f = 0.05: documents 0, 20, 40, ... are validation.
  std::vector<int64_t> val;
  for (int64_t i = 0; i < 500; ++i) {
    if (is_val_document(i, 0.05)) val.push_back(i);
  }
  REQUIRE(val.size() == 25);
  for (size_t k = 0; k < val.size(); ++k) CHECK(val[k] == static_cast<int64_t>(20 * k));
  // Among the first N documents exactly ceil(N * f) are validation.
  for (double f : {0.0, 0.01, 0.1, 0.25, 1.0 / 3, 0.5, 0.9}) {
    const int64_t q = std::llround(f * 1e6);
    int64_t count = 0;
    for (int64_t n = 1; n <= 300; ++n) {
      count += is_val_document(n - 1, f) ? 1 : 0;
      CHECK(count == (n * q + 999999) / 1000000);
    }
  }
}

TEST_CASE("documents: JSONL lines and whole plain-text files, with named errors", "[data]") {
  TempDir d;
  test::write_text(d.file("a.jsonl"), "{\"text\": \"one\"}\n\n{\"text\": \"two\\nlines\", \"id\": 3}\n");
  test::write_text(d.file("b.txt"), "a whole\nfile\n");
  DocumentReader r({d.file("a.jsonl"), d.file("b.txt")});
  Document doc;
  std::vector<std::string> texts;
  while (r.next(doc)) texts.push_back(doc.text);
  CHECK(texts == std::vector<std::string>{"one", "two\nlines", "a whole\nfile\n"});
  CHECK(r.bytes_read() == r.total_bytes());

  auto error_of = [&](const std::string& content, const std::string& field = "text") {
    test::write_text(d.file("bad.jsonl"), content);
    try {
      DocumentReader x({d.file("bad.jsonl")}, field);
      Document dd;
      while (x.next(dd)) {}
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("{\"text\": \"ok\"}\n{oops\n").find(d.file("bad.jsonl") + ":2: not valid JSON") != std::string::npos);
  CHECK(error_of("{\"body\": \"x\"}\n").find(":1: no \"text\" field") != std::string::npos);
  CHECK(error_of("{\"text\": 5}\n").find("expected a string") != std::string::npos);
  CHECK(error_of("[1]\n").find("expected a JSON object") != std::string::npos);
  CHECK(error_of("{\"body\": \"x\"}\n", "body").empty());
  try {
    DocumentReader x({d.file("a.jsonl"), d.file("missing.txt")});
    FAIL("no error for a missing input");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find(d.file("missing.txt")) != std::string::npos);
  }
}

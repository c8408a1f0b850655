// The autonomoe-data executable: exit codes (0 ok, 1 user error, 2 bad arguments) and messages.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "test_data_util.h"

using am::test::TempDir;

namespace {

struct Run {
  int code;
  std::string out;  // stdout and stderr
};

Run run_tool(const TempDir& d, const std::string& args) {
  const std::string tool = std::string(AM_BINARY_DIR) + "/data_tools/autonomoe-data";
  if (!std::filesystem::exists(tool)) FAIL(tool << " is not built (scripts/build.sh builds it)");
  const std::string log = d.file("out.txt");
  const int status = std::system((tool + " " + args + " > " + log + " 2>&1").c_str());
  std::ifstream f(log);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>())};
}

}  // namespace

TEST_CASE("autonomoe-data: help, bad arguments (2), user errors (1)", "[data]") {
  TempDir d;
  CHECK(run_tool(d, "").code == 2);
  CHECK(run_tool(d, "--help").code == 0);
  for (const char* cmd : {"brown-to-text", "train-tokenizer", "encode"}) {
    const Run r = run_tool(d, std::string(cmd) + " --help");
    CHECK(r.code == 0);
    CHECK(r.out.find("--input") != std::string::npos);
  }
  Run r = run_tool(d, "frobnicate");
  CHECK(r.code == 2);
  CHECK(r.out.find("unknown command \"frobnicate\"") != std::string::npos);
  r = run_tool(d, "encode --input x.jsonl");
  CHECK(r.code == 2);
  CHECK(r.out.find("--tokenizer is required") != std::string::npos);
  r = run_tool(d, "train-tokenizer --input a.txt --vocab-size lots --model-prefix m");
  CHECK(r.code == 2);
  CHECK(r.out.find("--vocab-size: expected an integer, got \"lots\"") != std::string::npos);
  r = run_tool(d, "encode --tokenizer t.model --input a.txt --out-dir o --name n --val-fraction 1.5");
  CHECK(r.code == 2);
  CHECK(r.out.find("--val-fraction must be in [0, 1)") != std::string::npos);
  r = run_tool(d, "brown-to-text --input a --output b --colour red");
  CHECK(r.code == 2);
  CHECK(r.out.find("unknown option --colour") != std::string::npos);

  const std::string missing = d.file("missing.txt");
  r = run_tool(d, "train-tokenizer --input " + missing + " --vocab-size 300 --model-prefix " + d.file("m"));
  CHECK(r.code == 1);
  CHECK(r.out.find(missing) != std::string::npos);

  std::filesystem::create_directory(d.file("brown"));
  am::test::write_text(d.file("brown/ca01"), "\tHello/uh ,/, world/nn ./.\n");
  r = run_tool(d, "brown-to-text --input " + d.file("brown") + " --output=" + d.file("b.jsonl"));
  CHECK(r.code == 0);
  CHECK(r.out.find("1 documents, 4 words") != std::string::npos);
  std::ifstream f(d.file("b.jsonl"));
  std::string line;
  std::getline(f, line);
  CHECK(line == "{\"text\":\"Hello, world.\",\"id\":\"ca01\"}");
}

// Every subcommand creates the folders its outputs go to (as `mkdir -p` would), and a path that
// cannot be a folder (a file in the way) is a user error naming the option and the file.
TEST_CASE("autonomoe-data: creates its output folders, or says why it cannot", "[data]") {
  TempDir d;
  std::filesystem::create_directory(d.file("brown"));
  am::test::write_text(d.file("brown/ca01"),
                       "\tThe/at cat/nn sat/vbd on/in the/at mat/nn ./.\n"
                       "\tThe/at dog/nn ran/vbd ./.\n");
  Run r = run_tool(d, "brown-to-text --input " + d.file("brown") + " --output " + d.file("a/b/brown.jsonl"));
  CHECK(r.code == 0);
  CHECK(std::filesystem::is_regular_file(d.file("a/b/brown.jsonl")));
  r = run_tool(d, "train-tokenizer --input " + d.file("a/b/brown.jsonl") +
                      " --vocab-size 40 --no-byte-fallback --character-coverage 1 --model-prefix " +
                      d.file("t/o/k/tok"));
  CHECK(r.code == 0);
  CHECK(std::filesystem::is_regular_file(d.file("t/o/k/tok.model")));
  r = run_tool(d, "encode --tokenizer " + d.file("t/o/k/tok.model") + " --input " + d.file("a/b/brown.jsonl") +
                      " --val-fraction 0 --name n --out-dir " + d.file("e/n/c"));
  CHECK(r.code == 0);
  CHECK(std::filesystem::is_regular_file(d.file("e/n/c/dataset.json")));
  r = run_tool(d, "synthetic --vocab-size 20 --tokens 100 --val-tokens 20 --out-dir " + d.file("s/y/n"));
  CHECK(r.code == 0);
  CHECK(std::filesystem::is_regular_file(d.file("s/y/n/dataset.json")));

  am::test::write_text(d.file("file"), "in the way\n");
  r = run_tool(d, "brown-to-text --input " + d.file("brown") + " --output " + d.file("file/x/brown.jsonl"));
  CHECK(r.code == 1);
  CHECK(r.out.find("the directory of --output '" + d.file("file/x") + "' cannot be created: '" + d.file("file") +
                   "' is in the way") != std::string::npos);
  r = run_tool(d, "train-tokenizer --input " + d.file("a/b/brown.jsonl") +
                      " --vocab-size 40 --no-byte-fallback "
                      "--model-prefix " +
                      d.file("file/tok"));
  CHECK(r.code == 1);
  CHECK(r.out.find("the directory of --model-prefix '" + d.file("file") + "'") != std::string::npos);
  r = run_tool(d, "encode --tokenizer " + d.file("t/o/k/tok.model") + " --input " + d.file("a/b/brown.jsonl") +
                      " --name n --out-dir " + d.file("file/enc"));
  CHECK(r.code == 1);
  CHECK(r.out.find("--out-dir '" + d.file("file/enc") + "' cannot be created: '" + d.file("file") +
                   "' is in the way") != std::string::npos);
}

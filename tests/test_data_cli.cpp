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
  r = run_tool(d,
               "encode --tokenizer t.model --input a.txt --out-dir o --name n --val-fraction 1.5");
  CHECK(r.code == 2);
  CHECK(r.out.find("--val-fraction must be in [0, 1)") != std::string::npos);
  r = run_tool(d, "brown-to-text --input a --output b --colour red");
  CHECK(r.code == 2);
  CHECK(r.out.find("unknown option --colour") != std::string::npos);

  const std::string missing = d.file("missing.txt");
  r = run_tool(
      d, "train-tokenizer --input " + missing + " --vocab-size 300 --model-prefix " + d.file("m"));
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

// Zero-shot multiple-choice evaluation (train/task_eval.h, data/task_file.h): the task file layouts
// and their errors, HellaSwag's preprocessing, and the scores of a tiny model against
// log-likelihoods computed here from its full-sequence logits (log-softmax in double).
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "data/task_file.h"
#include "data/tokenizer.h"
#include "model/transformer.h"
#include "test_data_util.h"
#include "train/task_eval.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>

using namespace am;
using am::test::TempDir;
using am::test::user_error;
using am::test::write_text;

namespace {

// A tokenizer trained on a few sentences (vocabulary 100), in `dir`.
std::string tiny_tokenizer(const TempDir& dir) {
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "big", "red", "house"};
  {
    std::ofstream f(dir.file("corpus.jsonl"));
    for (int d = 0; d < 30; ++d) {
      std::string text;
      for (int w = 0; w < 12; ++w) text += std::string(w ? " " : "") + words[(d * 5 + w * 7) % 12];
      f << nlohmann::json{{"text", text + "."}}.dump() << "\n";
    }
  }
  TokenizerTrainOptions o;
  o.inputs = {dir.file("corpus.jsonl")};
  o.vocab_size = 100;
  o.byte_fallback = false;
  o.character_coverage = 1.0;
  o.model_prefix = dir.file("tiny");
  o.threads = 1;
  train_tokenizer(o);
  return dir.file("tiny.model");
}

ModelConfig tiny_model(int vocab) {
  ModelConfig m;
  m.vocab_size = vocab;
  m.d_model = 16;
  m.n_layers = 2;
  m.n_heads = 2;
  m.max_seq_len = 16;
  m.init_std = 0.3;  // logits far from uniform: choices get clearly different scores
  m.moe.n_experts = 4;
  m.moe.d_ffn = 8;
  m.moe.selector.k = 2;
  return m;
}

// The summed log-likelihood of tokens[n-n_cont .. n-1] given what precedes them: one sequence in
// row 0 of a forward pass, its logits log-softmaxed in double here.
double hand_loglik(Backend& be, Transformer& model, const std::vector<int32_t>& tokens, int n_cont) {
  const int B = model.micro_batch(), T = model.seq_len(), V = model.config().vocab_size;
  std::vector<int32_t> in(static_cast<size_t>(B * T), 0), tg(static_cast<size_t>(B * T), -1);
  const int n = static_cast<int>(tokens.size()) - 1;
  std::copy(tokens.begin(), tokens.end() - 1, in.begin());
  model.forward(in.data(), tg.data(), 0.0);
  const std::vector<double> logits = download_as_double(be, model.logits());
  double ll = 0;
  for (int j = n - n_cont; j < n; ++j) {
    const double* z = &logits[static_cast<size_t>(j) * V];
    double mx = z[0], sum = 0;
    for (int v = 1; v < V; ++v) mx = std::max(mx, z[v]);
    for (int v = 0; v < V; ++v) sum += std::exp(z[v] - mx);
    ll += z[tokens[static_cast<size_t>(j) + 1]] - mx - std::log(sum);
  }
  return ll;
}

}  // namespace

TEST_CASE("task file: the generic layout, per-choice contexts, and HellaSwag", "[task]") {
  TempDir d;
  write_text(d.file("t.jsonl"),
             "{\"context\": \"The sky is\", \"choices\": [\"blue\", \"green\"], \"label\": 0}\n\n"
             "{\"context\": [\"A\", \"B\"], \"choices\": [\"x\", \"x\"], \"label\": 1}\n"
             "{\"ctx_a\": \"A man [step] sits.\", \"ctx_b\": \"THEN he\", \"activity_label\": \"Cooking\", "
             "\"endings\": [\" stands [title] up  now. \", \"eats.\"], \"label\": \"1\"}\n");
  const TaskFile f = read_task_file(d.file("t.jsonl"));
  CHECK(f.name == "t");
  REQUIRE(f.examples.size() == 3);
  CHECK(f.examples[0].contexts == std::vector<std::string>{"The sky is", "The sky is"});
  CHECK(f.examples[0].continuations == std::vector<std::string>{"blue", "green"});
  CHECK(f.examples[1].contexts == std::vector<std::string>{"A", "B"});
  CHECK(f.examples[1].line == 3);  // the blank line counts
  // ctx_a + " " + ctx_b.capitalize(), "[step]" dropped, " [title]" -> ". ", "  " -> " ", stripped
  CHECK(f.examples[2].contexts[0] == "Cooking: A man sits. Then he");
  CHECK(f.examples[2].continuations == std::vector<std::string>{"stands. up now.", "eats."});
  CHECK(f.examples[2].label == 1);
  CHECK(read_task_file(d.file("t.jsonl"), 2).examples.size() == 2);
  CHECK(hellaswag_preprocess("a [b\nc] d") == "a [b\nc] d");  // a bracket does not span lines
  CHECK(split_task_list("a.jsonl,,b.jsonl,") == std::vector<std::string>{"a.jsonl", "b.jsonl"});
  CHECK(split_task_list("").empty());
}

TEST_CASE("task file: errors name the file, the line and the field", "[task]") {
  TempDir d;
  const auto err = [&](const std::string& text) {
    write_text(d.file("bad.jsonl"), "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 0}\n" + text + "\n");
    return user_error([&] { read_task_file(d.file("bad.jsonl")); });
  };
  CHECK_THAT(err("{\"context\": \"c\", \"label\": 0}"), Catch::Contains("bad.jsonl:2: field 'choices': missing"));
  CHECK_THAT(err("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 2}"),
             Catch::Contains("bad.jsonl:2: field 'label': 2 is out of range: the example has 2 choices"));
  CHECK_THAT(err("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"label\": 0"),
             Catch::Contains("bad.jsonl:2: invalid JSON"));
  CHECK_THAT(err("{\"context\": 3, \"choices\": [\"a\", \"b\"], \"label\": 0}"),
             Catch::Contains("bad.jsonl:2: field 'context': expected a string or a list of strings, got number"));
  CHECK_THAT(err("{\"context\": \"c\", \"choices\": [\"a\", \"\"], \"label\": 0}"),
             Catch::Contains("bad.jsonl:2: field 'choices': choice 1 is empty"));
  CHECK_THAT(err("{\"context\": \"c\", \"choices\": [\"a\"], \"label\": 0}"), Catch::Contains("at least 2"));
  CHECK_THAT(err("{\"ctx_a\": \"c\", \"ctx_b\": \"d\", \"endings\": [\"a\", \"b\"], \"label\": 0}"),
             Catch::Contains("bad.jsonl:2: field 'activity_label': missing"));
  CHECK_THAT(user_error([&] { read_task_file(d.file("none.jsonl")); }), Catch::Contains("none.jsonl' cannot be read"));
}

TEST_CASE("task eval: acc and acc_norm differ when the choices' byte lengths do", "[task]") {
  TaskFile f;
  f.name = "t";
  TaskExample ex;
  ex.contexts = {"q", "q", "q"};
  ex.continuations = {"a", "a much longer answer", "b"};  // 1, 20 and 1 bytes
  ex.label = 1;
  f.examples = {ex, ex};
  f.examples[1].label = 0;
  // example 1: sums -3 > -10 > -5 pick choice 0; per byte -0.5 (choice 1) is the best
  const TaskResult r = tally_task(f, {-3, -10, -5, -2, -2, -2});
  CHECK(r.correct == 1);       // example 2: a tie goes to choice 0
  CHECK(r.correct_norm == 1);  // example 1 by acc_norm; example 2's norm picks choice 1 (-0.1)
  CHECK(r.acc == 0.5);
  CHECK(r.acc_norm == 0.5);
  CHECK(r.loglik[0] == std::vector<double>{-3, -10, -5});
  CHECK(r.pred == std::vector<int>{0, 0});
  CHECK(r.pred_norm == std::vector<int>{1, 1});
  const TaskResult one = tally_task(TaskFile{"", "t", {f.examples[0]}}, {-3, -10, -5});
  CHECK(one.acc == 0.0);
  CHECK(one.acc_norm == 1.0);
}

TEST_CASE("task eval: the scores are the log-likelihoods of the model's logits", "[task]") {
  TempDir d;
  const Tokenizer tok(tiny_tokenizer(d));
  const int T = 16;
  CpuBackend be(DType::F32, 1);
  Transformer model(be, tiny_model(tok.vocab_size()), 3, T);
  model.store().init(7);
  TaskFile f;
  f.path = "inline";
  f.name = "inline";
  const std::string long_ctx = "the big red dog ran to the house and the cat sat on a mat then the dog sat on the cat";
  f.examples = {
      {{"the cat sat on", "the cat sat on"}, {"a mat", "the big red house"}, 0, 1},
      {{"the dog \n ", "the dog \n "}, {"ran", "sat on a red mat"}, 1, 2},  // trailing whitespace moves
      {{long_ctx, long_ctx}, {"house", "big red dog"}, 0, 3},               // truncated on the left
      {{"a cat sat on", "a dog sat on"}, {"the mat", "the mat"}, 1, 4},     // per-choice contexts
  };
  const std::vector<ScoreRequest> reqs = task_requests(f, tok, tok.eot_token(), T);
  REQUIRE(reqs.size() == 8);
  const std::vector<double> ll = score_requests(model, reqs);  // 3 batches, the last one partial

  size_t k = 0;
  int correct = 0, correct_norm = 0;
  for (const TaskExample& ex : f.examples) {
    std::vector<double> sums, norms;
    for (size_t i = 0; i < ex.continuations.size(); ++i, ++k) {
      // the harness's rule, written out: context without its trailing spaces; the continuation is
      // those spaces + " " + the choice; its tokens are the tail of the whole text's
      std::string ctx = ex.contexts[i];
      std::string cont = " " + ex.continuations[i];
      while (!ctx.empty() && std::isspace(static_cast<unsigned char>(ctx.back()))) {
        cont.insert(cont.begin(), ctx.back());
        ctx.pop_back();
      }
      const std::vector<int32_t> whole = tok.encode(ctx + cont);
      const int n_cont = static_cast<int>(whole.size() - tok.encode(ctx).size());
      std::vector<int32_t> seq{tok.eot_token()};
      seq.insert(seq.end(), whole.begin(), whole.end());
      if (seq.size() > T + 1u) seq.erase(seq.begin(), seq.end() - (T + 1));
      CHECK(reqs[k].tokens == seq);
      CHECK(reqs[k].n_cont == n_cont);
      const double want = hand_loglik(be, model, seq, n_cont);
      CHECK(ll[k] == Approx(want).epsilon(1e-5));
      CHECK(std::abs(ll[k] - want) < 1e-4);
      sums.push_back(want);
      norms.push_back(want / static_cast<double>(ex.continuations[i].size()));
    }
    correct += std::max_element(sums.begin(), sums.end()) - sums.begin() == ex.label;
    correct_norm += std::max_element(norms.begin(), norms.end()) - norms.begin() == ex.label;
  }
  CHECK(tok.encode(long_ctx).size() > T);  // the third example was truncated

  // evaluate_task: the same scores, tallied
  const TaskResult r = evaluate_task(model, f, tok, tok.eot_token());
  CHECK(r.correct == correct);
  CHECK(r.correct_norm == correct_norm);
  // a request's score does not depend on its neighbours: the same bits in reverse order, and
  // (up to the GEMMs' rounding) with one row per forward pass
  const std::vector<ScoreRequest> rev(reqs.rbegin(), reqs.rend());
  std::vector<double> ll_rev = score_requests(model, rev);
  std::reverse(ll_rev.begin(), ll_rev.end());
  CHECK(ll_rev == ll);
  Transformer one_row(be, tiny_model(tok.vocab_size()), 1, T);
  one_row.store().init(7);
  const std::vector<double> ll1 = score_requests(one_row, reqs);
  for (size_t i = 0; i < ll.size(); ++i) CHECK(ll1[i] == Approx(ll[i]).epsilon(1e-6));
}

TEST_CASE("task eval: expert choice is refused, a tokenless or too long choice named", "[task]") {
  ModelConfig m = tiny_model(100);
  m.moe.selector.type = "expert_choice";
  m.moe.selector.capacity_factor = 1;
  CHECK_THAT(user_error([&] { check_task_eval_supported(m); }),
             Catch::Contains("model.moe.selector.type is expert_choice"));
  m.moe.selector.type = "topk";
  CHECK(user_error([&] { check_task_eval_supported(m); }).empty());  // a warning only

  TempDir d;
  const Tokenizer tok(tiny_tokenizer(d));
  TaskFile f{"f.jsonl", "f", {{{"the cat", "the cat"}, {"sat", "the big red dog ran to the house"}, 0, 5}}};
  CHECK_THAT(user_error([&] { task_requests(f, tok, tok.eot_token(), 4); }),
             Catch::Contains("f.jsonl:5: choice 1 is 8 tokens long, more than data.seq_len = 4"));
}

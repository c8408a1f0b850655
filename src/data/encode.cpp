#include "data/encode.h"

#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "data/documents.h"
#include "data/progress.h"
#include "data/split_writer.h"
#include "data/tokenizer.h"
#include "io/output_dir.h"

namespace am {

namespace fs = std::filesystem;

double unigram_entropy_nats(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total == 0) return 0;
  double h = 0;
  for (int64_t c : counts) {
    if (c == 0) continue;
    const double p = static_cast<double>(c) / static_cast<double>(total);
    h -= p * std::log(p);
  }
  return h;
}

namespace {

// Name of a shard this dataset name could have written: NAME_(train|val)_DDDDDD.bin.
bool is_own_shard_name(const std::string& file, const std::string& name) {
  for (const std::string split : {"train", "val"}) {
    const std::string pre = name + "_" + split + "_";
    if (file.size() == pre.size() + 10 && file.compare(0, pre.size(), pre) == 0 &&
        file.compare(file.size() - 4, 4, ".bin") == 0 &&
        std::all_of(file.begin() + static_cast<long>(pre.size()), file.end() - 4,
                    [](char c) { return c >= '0' && c <= '9'; })) {
      return true;
    }
  }
  return false;
}

void copy_atomically(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (fs::exists(to, ec) && fs::equivalent(from, to, ec)) return;
  const fs::path tmp = to.string() + ".tmp";
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) fail("cannot copy {} to {}: {}", from.string(), tmp.string(), ec.message());
  fs::rename(tmp, to, ec);
  if (ec) fail("cannot rename {} to {}: {}", tmp.string(), to.string(), ec.message());
}

void check_encode_options(const EncodeOptions& o) {
  if (o.name.empty() || o.name.find('/') != std::string::npos) {
    fail("encode: --name must be a non-empty file name prefix without '/', got \"{}\"", o.name);
  }
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) {
    fail("encode: --val-fraction must be in [0, 1), got {}", o.val_fraction);
  }
}

// Fills `batch` with the next documents, up to a batch's bytes or documents; false once `docs`
// has no more.
bool read_batch(DocumentReader& docs, std::vector<Document>& batch) {
  constexpr size_t kBatchBytes = 32u << 20, kBatchDocs = 16384;
  batch.clear();
  size_t bytes = 0;
  Document d;
  bool more = true;
  while (bytes < kBatchBytes && batch.size() < kBatchDocs && (more = docs.next(d))) {
    bytes += d.text.size();
    batch.push_back(std::move(d));
  }
  return more;
}

// Encodes `batch` in parallel into `encoded`; the first exception of any thread is rethrown.
void encode_batch(const Tokenizer& tok, const std::vector<Document>& batch,
                  std::vector<std::vector<int32_t>>& encoded) {
  encoded.assign(batch.size(), {});
  const long n = static_cast<long>(batch.size());
  std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 16)
  for (long i = 0; i < n; ++i) {
    try {
      encoded[static_cast<size_t>(i)] = tok.encode(batch[static_cast<size_t>(i)].text);
    } catch (...) {
#pragma omp critical
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

// Where encoded documents go: the two splits, the train unigram counts and the result's tallies.
struct SplitSinks {
  SplitWriter& train;
  SplitWriter& val;
  std::vector<int64_t>& counts;
  EncodeResult& r;
};

// Writes the documents of `encoded`, numbered from `index` on, each after `eot`, to its split;
// empty ones are skipped. Advances `index` past them.
void write_batch(const std::vector<std::vector<int32_t>>& encoded, int32_t eot, double val_fraction, SplitSinks& s,
                 int64_t& index) {
  DatasetMeta& m = s.r.meta;
  for (size_t i = 0; i < encoded.size(); ++i, ++index) {
    const auto& ids = encoded[i];
    if (ids.empty()) {
      ++s.r.skipped_documents;
      continue;
    }
    const bool is_val = is_val_document(index, val_fraction);
    SplitWriter& w = is_val ? s.val : s.train;
    w.write(&eot, 1);
    w.write(ids.data(), ids.size());
    if (is_val) {
      ++m.val.documents;
    } else {
      ++m.train.documents;
      ++s.counts[static_cast<size_t>(eot)];
      for (int32_t t : ids) ++s.counts[static_cast<size_t>(t)];
    }
  }
}

// Encodes every document of `docs` into `s`; returns how many documents were read.
int64_t encode_documents(const EncodeOptions& o, const Tokenizer& tok, int32_t eot, DocumentReader& docs,
                         SplitSinks& s) {
  // Documents are encoded in parallel in batches and written in input order (deterministic).
  if (o.threads > 0) omp_set_num_threads(o.threads);
  std::vector<Document> batch;
  std::vector<std::vector<int32_t>> encoded;
  int64_t index = 0;  // document index of batch[0]
  Progress progress("encode", docs.total_bytes());
  bool more = true;
  while (more) {
    more = read_batch(docs, batch);
    encode_batch(tok, batch, encoded);
    write_batch(encoded, eot, o.val_fraction, s, index);
    progress.update(docs.bytes_read(), fmt::format("{} docs", index));
  }
  progress.finish();
  return index;
}

// Removes the shards an earlier run with the same name left in the output directory (the shard
// glob would pick them up); their names go to `removed`, sorted.
void remove_stale_shards(const EncodeOptions& o, const DatasetMeta& m, std::vector<std::string>& removed) {
  const std::set<std::string> keep(m.train.shards.begin(), m.train.shards.end());
  const std::set<std::string> keep_val(m.val.shards.begin(), m.val.shards.end());
  for (const auto& e : fs::directory_iterator(o.out_dir)) {
    const std::string f = e.path().filename().string();
    if (is_own_shard_name(f, o.name) && !keep.count(f) && !keep_val.count(f)) {
      std::error_code ec;
      fs::remove(e.path(), ec);
      removed.push_back(f);
      spdlog::info("removed {} left over from an earlier run", e.path().string());
    }
  }
  std::sort(removed.begin(), removed.end());
}

// Copies the tokenizer next to the shards and writes dataset.json from `r`.
void write_meta(const EncodeOptions& o, int64_t vocab_size, int32_t eot, const std::vector<int64_t>& counts,
                EncodeResult& r) {
  DatasetMeta& m = r.meta;
  const fs::path model_name = fs::path(o.tokenizer).filename();
  copy_atomically(o.tokenizer, fs::path(o.out_dir) / model_name);
  m.vocab_size = vocab_size;
  m.eot_token = eot;
  m.tokenizer = model_name.string();
  m.unigram_entropy_nats = unigram_entropy_nats(counts);
  m.extra = {{"token_bytes", shard_token_bytes_for_vocab(vocab_size)},
             {"val_fraction", o.val_fraction},
             {"split_rule", "document i (0-based, input order) is val iff ceil((i+1)*f) > ceil(i*f)"},
             {"shard_tokens", o.shard_tokens},
             {"text_field", o.text_field},
             {"inputs", o.inputs},
             {"skipped_documents", r.skipped_documents},
             {"created_by", "autonomoe-data encode"}};
  write_dataset_meta(o.out_dir, m);
  m.path = (fs::path(o.out_dir) / "dataset.json").string();
}

}  // namespace

EncodeResult encode_dataset(const EncodeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  check_encode_options(o);
  const Tokenizer tok(o.tokenizer);
  DocumentReader docs(o.inputs, o.text_field);
  check_output_dir(o.out_dir, "--out-dir");  // names what is in the way
  create_output_dir(o.out_dir, "--out-dir");

  const int64_t V = tok.vocab_size();
  const int32_t eot = tok.eot_token();
  if (eot < 0) fail("{}: the tokenizer has no end-of-text (eos) token", o.tokenizer);
  SplitWriter train(o.out_dir, o.name, "train", V, o.shard_tokens);
  SplitWriter val(o.out_dir, o.name, "val", V, o.shard_tokens);
  std::vector<int64_t> counts(static_cast<size_t>(V), 0);  // train unigram counts
  EncodeResult r;
  DatasetMeta& m = r.meta;
  SplitSinks sinks{train, val, counts, r};
  const int64_t documents = encode_documents(o, tok, eot, docs, sinks);
  if (m.train.documents == 0) {
    throw UserError(fmt::format("encode: no training documents among the {} input document(s) "
                                "({} skipped as empty, {} went to val)",
                                documents, r.skipped_documents, m.val.documents),
                    "give more documents or a smaller --val-fraction");
  }
  m.train.shards = train.finish();
  m.val.shards = val.finish();
  m.train.tokens = train.tokens();
  m.val.tokens = val.tokens();
  remove_stale_shards(o, m, r.removed_stale);
  write_meta(o, V, eot, counts, r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace am

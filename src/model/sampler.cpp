#include "model/sampler.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace am {

void check_sample_options(const SampleOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0) {
    throw UserError(fmt::format("--temperature {} is out of range", o.temperature),
                    "use a temperature >= 0 (0 = greedy decoding)");
  }
  if (o.top_k < 0) throw UserError(fmt::format("--top-k {} is negative", o.top_k), "use 0 (off) or k >= 1");
  if (!(o.top_p > 0 && o.top_p <= 1)) {
    throw UserError(fmt::format("--top-p {} is out of range", o.top_p), "use 0 < top-p <= 1 (1 = off)");
  }
}

std::vector<double> sample_distribution(const std::vector<double>& logits, const SampleOptions& o) {
  AM_CHECK(!logits.empty() && o.temperature > 0, "sample_distribution: {} logits, temperature {}", logits.size(),
           o.temperature);
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::exp((logits[i] - top) / o.temperature);
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  size_t keep = p.size();
  if (o.top_k > 0) keep = std::min(keep, static_cast<size_t>(o.top_k));
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += p[order[i]];
  if (o.top_p < 1) {
    double mass = 0;
    size_t n = 0;
    while (n < keep && mass < o.top_p * total) mass += p[order[n++]];
    keep = std::max<size_t>(n, 1);
  }
  for (size_t i = keep; i < order.size(); ++i) p[order[i]] = 0;
  const double sum = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& v : p) v /= sum;
  return p;
}

int32_t sample_token(const std::vector<double>& logits, const SampleOptions& o, std::mt19937_64& rng) {
  if (o.temperature == 0) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  const std::vector<double> p = sample_distribution(logits, o);
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
  double cum = 0;
  int32_t last = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    last = static_cast<int32_t>(i);
    cum += p[i];
    if (u < cum) return last;
  }
  return last;  // rounding left u above the last sum
}

std::vector<int32_t> generate(Decoder& dec, const std::vector<int32_t>& prompt, int max_tokens, int32_t stop,
                              const SampleOptions& o) {
  AM_CHECK(!prompt.empty() && static_cast<int>(prompt.size()) <= dec.max_len(), "prompt of {} tokens, cache {}",
           prompt.size(), dec.max_len());
  std::mt19937_64 rng(o.seed);
  dec.reset();
  std::vector<double> logits;
  for (int32_t t : prompt) logits = dec.step(t);
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < max_tokens) {
    const int32_t next = sample_token(logits, o, rng);
    out.push_back(next);
    if (next == stop || dec.position() == dec.max_len()) break;
    logits = dec.step(next);
  }
  return out;
}

}  // namespace am

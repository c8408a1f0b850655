// Next-token sampling from logits (docs/sampling.md) and the generation loop over a Decoder.
#pragma once

#include "model/decode.h"

#include <cstdint>
#include <random>
#include <vector>

namespace am {

struct SampleOptions {
  double temperature = 1.0;  // 0: greedy (the argmax, lowest id on ties)
  int top_k = 0;             // > 0: keep the k most probable tokens
  double top_p = 1.0;        // < 1: keep the smallest most-probable set whose mass reaches top_p
  uint64_t seed = 0;
};

// UserError unless temperature >= 0, top_k >= 0 and 0 < top_p <= 1 (the message names the option).
void check_sample_options(const SampleOptions& o);

// The distribution sampled from (temperature > 0): softmax(logits / temperature), then the top-k
// filter, then the top-p (nucleus) filter, renormalised; filtered tokens get 0. Ties at the cut
// keep the lower ids.
std::vector<double> sample_distribution(const std::vector<double>& logits, const SampleOptions& o);

// The next token: the argmax at temperature 0, else a draw from sample_distribution with one
// 53-bit uniform from rng (the same seed gives the same tokens on every platform).
int32_t sample_token(const std::vector<double>& logits, const SampleOptions& o, std::mt19937_64& rng);

// Reads `prompt` (at least one token) into the decoder from position 0 and samples up to
// max_tokens tokens after it, stopping after `stop` (when >= 0) or when the cache is full (the
// last token is then predicted from the cache's last position: max_len + 1 tokens in all).
// Returns the sampled tokens.
std::vector<int32_t> generate(Decoder& dec, const std::vector<int32_t>& prompt, int max_tokens, int32_t stop,
                              const SampleOptions& o);

}  // namespace am

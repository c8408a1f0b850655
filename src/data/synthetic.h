// Synthetic token data with a learnable structure, for tests and benchmarks that must not depend
// on a downloaded corpus: a fixed random cycle of 17 tokens repeated, with 10% of the positions
// replaced by uniform noise. A model that learns the cycle gets well below log(vocab).
#pragma once

#include "data/dataset_meta.h"

#include <cstdint>
#include <string>
#include <vector>

namespace am {

std::vector<int32_t> synthetic_tokens(int64_t n, int64_t vocab_size, uint64_t seed);

// Writes DIR/NAME_train_000000.bin, DIR/NAME_val_000000.bin and DIR/dataset.json (tokenizer "",
// end-of-text token 0). Returns the description written.
DatasetMeta write_synthetic_dataset(const std::string& dir, const std::string& name, int64_t vocab_size,
                                    int64_t train_tokens, int64_t val_tokens, uint64_t seed);

}  // namespace am

// am-poison-checkpoint SRC DST_ROOT TENSOR: a copy of checkpoint SRC under DST_ROOT with element 0
// of TENSOR set to NaN and a matching manifest (tests/support/poison_checkpoint.h), for the CLI
// tests of eval and export on a checkpoint of non-finite weights. Prints the new checkpoint's path.
#include "support/poison_checkpoint.h"
#include "core/error.h"

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: am-poison-checkpoint SRC DST_ROOT TENSOR\n");
    return 2;
  }
  try {
    std::puts(am::test::poison_checkpoint(argv[1], argv[2], argv[3]).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// The Catch2 main of the CUDA parity tests. Without a usable CUDA device it runs nothing, says so,
// and exits 77, which ctest reports as "Skipped" (never as passed).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "cuda_backend.h"

#include <cstdio>

int main(int argc, char** argv) {
  if (!am::cuda_device_available()) {
    std::printf("skipped: no CUDA device; the CUDA parity tests did not run\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}

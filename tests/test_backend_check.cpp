// The start-up check of a run's backend against the CPU reference (train/backend_check.h): it
// passes for a backend that computes the same thing and fails, naming what differed, for one that
// does not. (The CUDA backend is checked by it at the start of every GPU run.)
#include "cpu/cpu_backend.h"
#include "train/backend_check.h"

#include <catch2/catch.hpp>

using namespace am;

TEST_CASE("the backend check accepts a backend that agrees with the CPU reference", "[backend-check]") {
  CpuBackend two_threads(DType::F32, 2);
  const BackendCheck c = check_against_cpu(two_threads, Precision::FP32);
  CHECK(c.ok);
  CHECK(c.worst == 0);  // the CPU backend is bit-identical for any thread count
  CHECK_THAT(c.detail, Catch::Contains("agrees"));
  CpuBackend bf16(DType::F32, 2, /*bf16_matmul=*/true);
  CHECK(check_against_cpu(bf16, Precision::BF16).ok);
}

TEST_CASE("the backend check refuses a backend that computes something else", "[backend-check]") {
  // bf16 operands measured against the fp32 reference at a tolerance fp32 would meet: the
  // differences (~1e-3 relative) are caught, and the message says where.
  CpuBackend bf16(DType::F32, 2, /*bf16_matmul=*/true);
  const BackendCheck c = check_against_cpu(bf16, Precision::FP32, 1e-6);
  CHECK_FALSE(c.ok);
  CHECK(c.worst > 1e-6);
  CHECK_THAT(c.detail, Catch::Contains("router model, step 1 loss") && Catch::Contains("vs cpu"));
}

TEST_CASE("runs on the CPU backend skip the check", "[backend-check]") {
  RunConfig run;
  run.backend = "cpu";
  run.threads = 1;
  run.precision = "bf16";
  const auto be = make_checked_backend(run);
  CHECK(be->name() == "cpu");
  CHECK(be->bf16_matmul());
}

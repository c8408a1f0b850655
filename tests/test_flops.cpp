// MFU's pieces (train/flops.h): FLOPs per token, the peak table, MFU itself.
#include "config/config.h"
#include "train/flops.h"

#include <catch2/catch.hpp>

#include <string>

using namespace am;

namespace {
std::string config_path(const std::string& rel) { return std::string(AM_SOURCE_DIR) + "/" + rel; }
}  // namespace

// The figures autonomoe-bench wrote with its own inline formula before it moved to
// train_flops_per_token (bench/results/2026-12-02-sim-counts-moe/tiny.json and
// t2_r09_aoe_dlow256_L2.json, "flops_per_token").
TEST_CASE("train_flops_per_token equals autonomoe-bench's earlier figures", "[flops]") {
  const Config tiny = load_config(config_path("configs/tiny.yaml"), {"run.backend=cuda"});
  CHECK(train_flops_per_token(tiny.model, tiny.data.seq_len) == 9861888.0);
  const Config aoe = load_config(config_path("configs/paper/t2_r09_aoe_dlow256.yaml"),
                                 {"run.backend=cuda", "model.n_layers=2", "data.seq_len=64", "model.max_seq_len=64",
                                  "train.micro_batch_size=2", "run.precision=bf16"});
  CHECK(train_flops_per_token(aoe.model, aoe.data.seq_len) == 346249728.0);
}

TEST_CASE("the MFU peak: run.peak_tflops, else the GPU table by device name, else none", "[flops]") {
  auto peak = peak_flops("cuda", "NVIDIA H200", "bf16", 0);
  REQUIRE(peak);
  CHECK(peak->tflops == 989);
  CHECK(peak->source == "NVIDIA H200: H200 bf16 dense, from the table");
  peak = peak_flops("cuda", "NVIDIA H100 80GB HBM3", "bf16", 0);
  REQUIRE(peak);
  CHECK(peak->tflops == 989);
  CHECK(peak->source == "NVIDIA H100 80GB HBM3: H100 SXM bf16 dense, from the table");
  peak = peak_flops("cuda", "NVIDIA H100 PCIe", "fp32", 0);
  REQUIRE(peak);
  CHECK(peak->tflops == 51);
  CHECK(peak->source == "NVIDIA H100 PCIe: H100 PCIe fp32, from the table");
  peak = peak_flops("cuda", "NVIDIA A100-SXM4-80GB", "bf16", 0);
  REQUIRE(peak);
  CHECK(peak->tflops == 312);
  CHECK_FALSE(peak_flops("cuda", "autonomoe CUDA simulator (CPU)", "bf16", 0));  // not a GPU: no MFU
  CHECK_FALSE(peak_flops("cuda", "NVIDIA GeForce GTX 1080", "fp32", 0));         // not in the table
  CHECK_FALSE(peak_flops("cpu", "", "fp32", 0));                                 // nothing misleading on the CPU
  peak = peak_flops("cpu", "", "fp32", 2.5);
  REQUIRE(peak);
  CHECK(peak->tflops == 2.5);
  CHECK(peak->source == "from run.peak_tflops");
  peak = peak_flops("cuda", "NVIDIA H200", "bf16", 700);  // the key wins over the table
  REQUIRE(peak);
  CHECK(peak->tflops == 700);
}

TEST_CASE("mfu: FLOPs per token x tokens/s over the peak of every device", "[flops]") {
  CHECK(mfu(1e9, 1e5, 1000, 1) == Approx(0.1).epsilon(1e-15));  // 1e14 FLOP/s of 1e15
  CHECK(mfu(1e9, 1e5, 1000, 2) == Approx(0.05).epsilon(1e-15));
  CHECK(mfu(6e9, 5e4, 989, 1) == Approx(6e9 * 5e4 / 989e12).epsilon(1e-15));
}

// Model FLOPs utilisation (MFU): the FLOPs a training token costs, the device's peak, and their
// ratio to the measured throughput. One definition for the training log (train/trainer.cpp) and
// autonomoe-bench (bench/bench_train.cpp); docs/benchmarks.md states the formula.
#pragma once

#include "config/config.h"

#include <optional>
#include <string>

namespace am {

// FLOPs per token of one training step (forward + backward = 3 x forward), at sequence length T:
//   6 * (active parameters - V * d)  +  6 * L * T * H * hd
// The first term: every weight a token multiplies with (count_params' active count, the embedding
// lookup removed; the LM head, k whole experts and the norms stay). The second: causal attention,
// QK^T and PV 2 * T * H * hd multiply-adds each per token, halved by the mask, times 3.
double train_flops_per_token(const ModelConfig& m, int T);

// The peak FLOP/s MFU is measured against, and where it comes from.
struct PeakFlops {
  double tflops = 0;   // per device, in 10^12 FLOP/s
  std::string source;  // "NVIDIA H200: H200 bf16 dense, from the table" | "from run.peak_tflops"
};

// run.peak_tflops when > 0; else, on the CUDA backend, the table entry of the device's name
// (cudaDeviceProp::name) for the run's precision: dense bf16 tensor-core peak for bf16, the fp32
// CUDA-core peak for fp32. nullopt when neither applies (the CPU backend, a device not in the
// table, or the simulator): the log then shows no MFU.
std::optional<PeakFlops> peak_flops(const std::string& backend, const std::string& device_name,
                                    const std::string& precision, double peak_tflops_key);

// FLOPs per token x tokens/s / (peak x devices), a fraction (0.4 = 40%).
double mfu(double flops_per_token, double tokens_per_s, double peak_tflops, int devices);

}  // namespace am

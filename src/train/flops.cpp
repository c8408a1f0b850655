#include "train/flops.h"

#include "model/model_info.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace am {

double train_flops_per_token(const ModelConfig& m, int T) {
  const ParamCounts pc = count_params(m);
  const double matmul_params = static_cast<double>(pc.active) - static_cast<double>(m.vocab_size) * m.d_model;
  const double attention = 6.0 * m.n_layers * T * m.n_heads * m.head_dim();
  return 6.0 * matmul_params + attention;
}

namespace {

// Dense (no sparsity) peaks from NVIDIA's data sheets, per GPU, in TFLOP/s. Matched in this order
// against the lower-cased device name, so the more specific names come first ("h100 pcie" before
// "h100"): "NVIDIA H100 80GB HBM3" is the SXM part, "NVIDIA H200" the SXM H200.
struct PeakEntry {
  const char* match;
  const char* label;
  double bf16, fp32;
};
const PeakEntry kPeaks[] = {
    {"h100 nvl", "H100 NVL", 835, 60}, {"h100 pcie", "H100 PCIe", 756, 51}, {"h100", "H100 SXM", 989, 67},
    {"h200 nvl", "H200 NVL", 835, 60}, {"h200", "H200", 989, 67},           {"a100", "A100", 312, 19.5},
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

std::optional<PeakFlops> peak_flops(const std::string& backend, const std::string& device_name,
                                    const std::string& precision, double peak_tflops_key) {
  if (peak_tflops_key > 0) return PeakFlops{peak_tflops_key, "from run.peak_tflops"};
  if (backend != "cuda" || (precision != "bf16" && precision != "fp32")) return std::nullopt;
  const std::string name = lower(device_name);
  for (const PeakEntry& e : kPeaks) {
    if (name.find(e.match) == std::string::npos) continue;
    const bool bf16 = precision == "bf16";
    return PeakFlops{bf16 ? e.bf16 : e.fp32,
                     fmt::format("{}: {} {}, from the table", device_name, e.label, bf16 ? "bf16 dense" : "fp32")};
  }
  return std::nullopt;
}

double mfu(double flops_per_token, double tokens_per_s, double peak_tflops, int devices) {
  return flops_per_token * tokens_per_s / (peak_tflops * 1e12 * devices);
}

}  // namespace am

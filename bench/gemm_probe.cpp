// autonomoe-gemm-probe: is a loop of per-expert GEMMs good enough, or would a grouped GEMM pay?
// A measurement, not a test.
//
//   autonomoe-gemm-probe --config configs/paper/t2_r10_aoe_dlow256_aux.yaml --set run.backend=cuda
//       [--repeats 20] [--json out.json] [--set key=value]...
//
// The expert products of one MoE layer, as training runs them (src/moe/swiglu_experts.cpp,
// factorized_experts.cpp): for every expert matrix W (out, in), the forward x W^T and the two
// backward products dy W and dy^T x, over A = N k assignments (N = micro_batch_size * seq_len;
// k = selector.k, or capacity_factor for expert choice) split over the n experts. Timed two ways:
//   loop:   one GEMM per expert (what the code does), rows split evenly and, second, skewed
//           (expert e gets rows proportional to e + 1: routing is never even);
//   single: one GEMM of all A rows against one weight matrix -- the same FLOPs in one call, the
//           best a grouped GEMM of these shapes could do.
//   grouped: the skewed split as three Backend::matmul_grouped calls, forced each way
//           (Backend::GroupedGemm): the project's grouped tensor-core kernel (one launch per call,
//           cuda/grouped_gemm_tc.cu) and the library's per-expert GEMMs; under bf16 on CUDA these
//           differ, and their ratio is what sets cuda::kGroupedKernelMaxMacs (Auto's threshold).
// single / loop near 1 means a grouped GEMM has nothing to win (docs/benchmarks.md).
#include "backends/backend_factory.h"
#include "cli/guarded.h"
#include "config/config.h"
#include "core/backend.h"
#include "probe_options.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

struct Matrix {
  std::string name;
  int64_t out, in;  // W (out, in); forward y (rows, out) = x (rows, in) W^T
};

// The expert matrices of the config's MoE layer. The factorized experts' W_down runs once for all
// experts in the AoE scorer (one dense GEMM), so it is not part of the per-expert loop.
std::vector<Matrix> expert_matrices(const am::ModelConfig& m) {
  const int64_t d = m.d_model, w = m.moe.hidden_width(m.d_model);
  if (m.moe.expert.type == "factorized") {
    const int64_t dl = m.moe.expert.d_low;
    return {{"w_up", w, dl}, {"w3", w, d}, {"w2", d, w}};
  }
  return {{"w1", w, d}, {"w3", w, d}, {"w2", d, w}};
}

class Probe {
 public:
  Probe(am::Backend& be, int64_t max_rows, int64_t max_dim) : be_(be) {
    const size_t n = static_cast<size_t>(max_rows * max_dim);
    for (auto* b : {&x_, &dy_, &y_, &dx_}) *b = be.alloc(n * sizeof(float));
    std::mt19937_64 rng(7);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> h(n);
    for (auto& v : h) v = nd(rng);
    for (auto* b : {&x_, &dy_}) be.upload(b->view(am::DType::F32, {static_cast<int64_t>(n)}), h.data());
  }

  // Median over `repeats` of the time of the three products for row blocks `rows` (one weight
  // each, all inside the registered master buffer `weights`).
  double time_ms(const Matrix& mat, const std::vector<int64_t>& rows, const std::vector<am::Tensor>& weights,
                 am::Tensor dweight, int repeats) {
    std::vector<double> ms;
    for (int r = 0; r < repeats + 2; ++r) {  // 2 warm-up rounds
      be_.synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      int64_t row0 = 0;
      for (size_t e = 0; e < rows.size(); ++e) {
        const int64_t m = rows[e];
        if (m == 0) continue;
        const am::Tensor x = view(x_, row0, m, mat.in), y = view(y_, row0, m, mat.out);
        const am::Tensor dy = view(dy_, row0, m, mat.out), dx = view(dx_, row0, m, mat.in);
        be_.matmul(y, x, false, weights[e], true, 1.0, 0.0);     // forward
        be_.matmul(dx, dy, false, weights[e], false, 1.0, 0.0);  // dx = dy W
        be_.matmul(dweight, dy, true, x, false, 1.0, 1.0);       // dW += dy^T x
        row0 += m;
      }
      be_.synchronize();
      if (r >= 2)
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

  // The same three products as three matmul_grouped calls over the experts (dws: one weight
  // gradient per expert), in the backend's grouped mode `mode`.
  double time_grouped_ms(const Matrix& mat, const std::vector<int64_t>& rows, const std::vector<am::Tensor>& weights,
                         const std::vector<am::Tensor>& dws, int repeats, am::Backend::GroupedGemm mode) {
    std::vector<am::Tensor> xs, ys, dys, dxs;
    int64_t row0 = 0;
    for (const int64_t m : rows) {
      xs.push_back(view(x_, row0, m, mat.in));
      ys.push_back(view(y_, row0, m, mat.out));
      dys.push_back(view(dy_, row0, m, mat.out));
      dxs.push_back(view(dx_, row0, m, mat.in));
      row0 += m;
    }
    be_.set_grouped_gemm(mode);
    std::vector<double> ms;
    for (int r = 0; r < repeats + 2; ++r) {  // 2 warm-up rounds
      be_.synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      be_.matmul_grouped(ys, xs, false, weights, true, 1.0, 0.0);
      be_.matmul_grouped(dxs, dys, false, weights, false, 1.0, 0.0);
      be_.matmul_grouped(dws, dys, true, xs, false, 1.0, 1.0);
      be_.synchronize();
      if (r >= 2)
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    be_.set_grouped_gemm(am::Backend::GroupedGemm::Auto);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

 private:
  static am::Tensor view(const am::Buffer& b, int64_t row0, int64_t rows, int64_t cols) {
    return am::Tensor(static_cast<float*>(b.get()) + row0 * cols, am::DType::F32, {rows, cols});
  }
  am::Backend& be_;
  am::Buffer x_, dy_, y_, dx_;
};

}  // namespace

int main(int argc, char** argv) {
  return am::run_guarded([&] {
    const am::bench::ProbeOptions o = am::bench::parse_probe_options("autonomoe-gemm-probe", 20, argc, argv);
    const am::Config cfg = am::load_config(o.config, o.sets);
    const am::ModelConfig& m = cfg.model;
    if (m.moe.n_experts == 0) throw am::UserError(fmt::format("{} has no MoE layers", o.config), "pick an MoE config");
    auto be = am::make_backend(cfg.run.backend, am::precision_from_name(cfg.run.precision), cfg.run.threads);
    const int64_t n = m.moe.n_experts;
    const int64_t N = static_cast<int64_t>(cfg.train.micro_batch_size) * cfg.data.seq_len;
    const double per_token =
        m.moe.selector.type == "expert_choice" ? m.moe.selector.capacity_factor : static_cast<double>(m.moe.selector.k);
    const int64_t A = std::max<int64_t>(n, static_cast<int64_t>(per_token * static_cast<double>(N)));
    std::vector<int64_t> even(n, A / n), skewed(n);
    even.back() += A - (A / n) * n;
    int64_t given = 0;
    for (int64_t e = 0; e < n; ++e) given += skewed[e] = A * (e + 1) / (n * (n + 1) / 2);
    skewed.back() += A - given;

    const std::vector<Matrix> mats = expert_matrices(m);
    int64_t max_dim = 0, max_w = 0;
    for (const Matrix& x : mats) {
      max_dim = std::max({max_dim, x.in, x.out});
      max_w = std::max(max_w, x.in * x.out);
    }
    Probe probe(*be, A, max_dim);
    am::Buffer master_buf = be->alloc(static_cast<size_t>((n + 1) * max_w) * sizeof(float));
    const am::Tensor master = master_buf.view(am::DType::F32, {(n + 1) * max_w});
    {
      std::vector<float> h(static_cast<size_t>(master.numel()));
      std::mt19937_64 rng(8);
      std::normal_distribution<float> nd(0.f, 0.02f);
      for (auto& v : h) v = nd(rng);
      be->upload(master, h.data());
    }
    be->refresh_weight_copy(master);  // weights come from the bf16 copy, as in training
    am::Buffer dw_buf = be->alloc(static_cast<size_t>(n * max_w) * sizeof(float));  // one per expert
    be->zero(dw_buf.view(am::DType::F32, {n * max_w}));                             // accumulated into (beta 1)

    nlohmann::json rows = nlohmann::json::array();
    std::printf("%s | %s | %lld experts, %lld assignments per layer (N=%lld)\n", o.config.c_str(),
                be->describe().c_str(), static_cast<long long>(n), static_cast<long long>(A),
                static_cast<long long>(N));
    double loop_total = 0, skew_total = 0, single_total = 0, kernel_total = 0, library_total = 0;
    for (const Matrix& x : mats) {
      std::vector<am::Tensor> w;
      for (int64_t e = 0; e < n; ++e) {
        w.emplace_back(static_cast<float*>(master.data) + e * max_w, am::DType::F32, std::vector<int64_t>{x.out, x.in});
      }
      const am::Tensor dw(dw_buf.get(), am::DType::F32, {x.out, x.in});
      const double loop = probe.time_ms(x, even, w, dw, o.repeats);
      const double skew = probe.time_ms(x, skewed, w, dw, o.repeats);
      const double single = probe.time_ms(x, {A}, {w[0]}, dw, o.repeats);
      std::vector<am::Tensor> dws;
      for (int64_t e = 0; e < n; ++e) {
        dws.emplace_back(static_cast<float*>(dw_buf.get()) + e * max_w, am::DType::F32,
                         std::vector<int64_t>{x.out, x.in});
      }
      // matmul_grouped's two ways (under bf16 on CUDA; elsewhere both are the backend's one way)
      const double kernel = probe.time_grouped_ms(x, skewed, w, dws, o.repeats, am::Backend::GroupedGemm::Kernel);
      const double library = probe.time_grouped_ms(x, skewed, w, dws, o.repeats, am::Backend::GroupedGemm::Library);
      const double gflop = 3 * 2.0 * static_cast<double>(A) * x.in * x.out * 1e-9;
      std::printf(
          "  %-5s (%lld x %lld): loop %.3f ms, skewed loop %.3f ms, single GEMM %.3f ms "
          "(single/loop %.3f; %.1f TFLOP/s looped); skewed, matmul_grouped: grouped kernel %.3f ms, "
          "library per expert %.3f ms\n",
          x.name.c_str(), static_cast<long long>(x.out), static_cast<long long>(x.in), loop, skew, single,
          single / loop, gflop / loop, kernel, library);
      rows.push_back({{"matrix", x.name},
                      {"out", x.out},
                      {"in", x.in},
                      {"loop_ms", loop},
                      {"skewed_loop_ms", skew},
                      {"single_ms", single},
                      {"gflop", gflop},
                      {"grouped_kernel_ms", kernel},
                      {"grouped_library_ms", library}});
      kernel_total += kernel;
      library_total += library;
      loop_total += loop;
      skew_total += skew;
      single_total += single;
    }
    std::printf(
        "  all: loop %.3f ms, skewed loop %.3f ms, single GEMM %.3f ms: a grouped GEMM could save at "
        "most %.1f%% (even) / %.1f%% (skewed) of the expert GEMM time\n",
        loop_total, skew_total, single_total, 100.0 * (1 - single_total / loop_total),
        100.0 * (1 - single_total / skew_total));
    std::printf(
        "  matmul_grouped (skewed rows): grouped kernel %.3f ms, library per expert %.3f ms "
        "(kernel / library %.3f; GroupedGemm::Auto takes the kernel up to 2^28 multiply-adds per problem)\n",
        kernel_total, library_total, kernel_total / library_total);
    if (!o.json.empty()) {
      const nlohmann::json j = {{"config", o.config},
                                {"sets", o.sets},
                                {"backend", be->describe()},
                                {"experts", n},
                                {"assignments", A},
                                {"tokens", N},
                                {"repeats", o.repeats},
                                {"matrices", rows},
                                {"loop_ms", loop_total},
                                {"skewed_loop_ms", skew_total},
                                {"single_ms", single_total},
                                {"grouped_kernel_ms", kernel_total},
                                {"grouped_library_ms", library_total}};
      std::ofstream(o.json) << j.dump(2) << "\n";
    }
    return 0;
  });
}

// autonomoe-comm-bench: the run's communicator, timed on the collectives training uses. A
// measurement, not a test.
//
//   autonomoe-comm-bench --config C [--set key=value]... [--repeats 10] [--json FILE]
//   mpirun -np 2 autonomoe-comm-bench --config C --set run.backend=cpu --set dist.comm=mpi
//
// Creates the world communicator exactly as `autonomoe train` does (dist.comm: single, mpi, nccl;
// auto = nccl with the CUDA backend) on the config's backend, then times, median of `repeats`:
//   all-reduce:  the whole model's gradient (every parameter of this rank, fp32), one call;
//   all-to-all:  one MoE layer's token exchange, N k rows of d (N = micro_batch_size * seq_len),
//                spread evenly over the ranks, there and back (what an expert-parallel layer sends).
// Unlike training, which skips collectives in a one-process run, both run at world size 1 too, so
// a single GPU measures the NCCL path end to end (its local copies and launch costs).
#include "backends/backend_factory.h"
#include "cli/guarded.h"
#include "config/config.h"
#include "core/backend.h"
#include "dist/launch.h"
#include "model/transformer.h"
#include "probe_options.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

template <typename F>
double median_ms(am::Backend& be, am::Comm& comm, int repeats, F&& f) {
  std::vector<double> ms;
  for (int r = 0; r < repeats + 1; ++r) {  // one warm-up (NCCL sets up its channels on first use)
    be.synchronize();
    comm.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    be.synchronize();
    if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  am::init_distributed(&argc, &argv);
  return am::run_guarded([&] {
    const am::bench::ProbeOptions o = am::bench::parse_probe_options("autonomoe-comm-bench", 10, argc, argv);
    const am::Config cfg = am::load_config(o.config, o.sets);
    auto be = am::make_backend(cfg.run.backend, am::precision_from_name(cfg.run.precision), cfg.run.threads);
    std::unique_ptr<am::Comm> world = am::make_world_comm(cfg.dist.comm, be->name());
    const int W = world->size();

    // The gradient of the whole model (with dist.ep > 1 a rank reduces less: its own experts).
    const int64_t params = am::Transformer::full_table(*be, cfg.model).total();
    am::Buffer grads = be->alloc(static_cast<size_t>(params) * sizeof(float));
    const am::Tensor g = grads.view(am::DType::F32, {params});
    be->zero(g);

    const int64_t N = static_cast<int64_t>(cfg.train.micro_batch_size) * cfg.data.seq_len, d = cfg.model.d_model;
    const int64_t rows = N * std::max(1, cfg.model.moe.selector.k);
    std::vector<int64_t> counts(static_cast<size_t>(W), rows / W);  // rows to each rank
    counts.back() += rows - (rows / W) * W;
    const std::vector<int64_t> recv_rows = world->all_to_all(counts, 1);
    int64_t recv_total = 0;
    for (int64_t c : recv_rows) recv_total += c;
    am::Buffer send_buf = be->alloc(static_cast<size_t>(rows * d) * sizeof(float));
    am::Buffer recv_buf = be->alloc(static_cast<size_t>(std::max<int64_t>(recv_total, 1) * d) * sizeof(float));
    const am::Tensor send = send_buf.view(am::DType::F32, {rows, d});
    // The single-process communicator exchanges in place (its exchange is the identity).
    const am::Tensor recv = world->name() == "single" ? send : recv_buf.view(am::DType::F32, {recv_total, d});
    be->zero(send);

    const double reduce_ms = median_ms(*be, *world, o.repeats, [&] { world->all_reduce_sum(g); });
    const double a2a_ms = median_ms(*be, *world, o.repeats, [&] {
      world->all_to_all_rows(send, counts, recv, recv_rows);  // to the experts
      world->all_to_all_rows(recv, recv_rows, send, counts);  // and back
    });
    const double reduce_gb = static_cast<double>(params) * 4 / 1e9;
    const double a2a_gb = 2.0 * static_cast<double>(rows * d) * 4 / 1e9;
    if (world->rank() == 0) {
      std::printf(
          "%s | %s | comm %s, %d rank(s)\n  all-reduce of the gradient (%lld fp32, %.3f GB): %.3f ms "
          "(%.1f GB/s algorithm bandwidth)\n  all-to-all of one MoE layer's rows, there and back (%lld x "
          "%lld fp32 each way, %.3f GB): %.3f ms (%.1f GB/s)\n",
          o.config.c_str(), be->describe().c_str(), world->name().c_str(), W, static_cast<long long>(params), reduce_gb,
          reduce_ms, reduce_gb / (reduce_ms / 1e3), static_cast<long long>(rows), static_cast<long long>(d), a2a_gb,
          a2a_ms, a2a_gb / (a2a_ms / 1e3));
      if (!o.json.empty()) {
        const nlohmann::json j = {{"config", o.config},
                                  {"sets", o.sets},
                                  {"backend", be->describe()},
                                  {"comm", world->name()},
                                  {"ranks", W},
                                  {"repeats", o.repeats},
                                  {"all_reduce_elements", params},
                                  {"all_reduce_ms", reduce_ms},
                                  {"all_to_all_rows", rows},
                                  {"all_to_all_width", d},
                                  {"all_to_all_ms", a2a_ms}};
        std::ofstream(o.json) << j.dump(2) << "\n";
      }
    }
    return 0;
  });
}

// The MoE layer on the device (issue 11 point 4), counted by the simulator: a forward makes at
// most one host synchronisation (route_build's expert offsets) and no upload, the backward and
// the selection-bias update none, and the metrics read (stats()) exactly one; none of it is queued
// on the legacy default stream. Checked for top-k
// with every aux loss and the selection bias, and for AoE with null experts (their learnable
// scores' gradient) and the null-averaged balancing loss. Simulator only (the counters).
#include "core/device_counts.h"
#include "cuda_test_util.h"
#include "moe/moe_layer.h"

#include <catch2/catch.hpp>

#include <functional>
#include <string>

using namespace am;
using namespace am::test;

namespace {

DeviceCounts counted(const std::function<void()>& f) {
  reset_device_counts();
  f();
  return *device_counts();
}

void check_layer(const ModelConfig& cfg) {
  auto be = make_cuda_backend(DType::F32, 0, false);
  const int64_t N = 24, d = cfg.d_model;
  MoeLayer layer(*be, cfg, 0, N);
  ParamTable table;
  layer.register_params(table);
  ParamStore store(*be, std::move(table));
  store.init(3);
  layer.bind(store);
  layer.allocate(N);
  TensorBuf h(*be, DType::F32, {N, d}), y(*be, DType::F32, {N, d}), dy(*be, DType::F32, {N, d}),
      dh(*be, DType::F32, {N, d}), aux(*be, DType::F32, {1});
  be->upload(h, randn(static_cast<size_t>(N * d), 1).data());
  be->upload(dy, randn(static_cast<size_t>(N * d), 2).data());
  auto step = [&] {
    layer.begin_step(0);
    layer.forward(h, y, aux);
    be->zero(dh);
    layer.backward(h, dy, dh, 1.0);
    layer.update_selection_bias();
  };
  step();  // warm-up: the caching allocator's first cudaMalloc calls are synchronisations
  step();
  layer.reset_stats();
  if (!device_counts()) return;  // not the simulator: nothing counted
  const DeviceCounts fwd = counted([&] { layer.forward(h, y, aux); });
  INFO("forward: d2h " << fwd.memcpy_d2h << " h2d " << fwd.memcpy_h2d << " malloc " << fwd.sync_malloc << " free "
                       << fwd.sync_free << " stream " << fwd.sync_stream << " device " << fwd.sync_device);
  CHECK(fwd.host_syncs() <= 1);
  CHECK(fwd.memcpy_h2d == 0);
  CHECK(fwd.legacy_stream_ops == 0);  // everything on the compute stream (cuda/stream.cuh)
  const DeviceCounts bwd = counted([&] {
    be->zero(dh);
    layer.backward(h, dy, dh, 1.0);
  });
  CHECK(bwd.host_syncs() == 0);
  CHECK(bwd.legacy_stream_ops == 0);
  const DeviceCounts upd = counted([&] {
    layer.begin_step(1);
    layer.update_selection_bias();
  });
  CHECK(upd.host_syncs() == 0);
  CHECK(upd.legacy_stream_ops == 0);
  const DeviceCounts read = counted([&] { CHECK(layer.stats().micro_batches == 1); });
  CHECK(read.host_syncs() == 1);
  CHECK(read.legacy_stream_ops == 0);
}

ModelConfig base() {
  ModelConfig m;
  m.d_model = 16;
  m.n_layers = 1;
  m.init_std = 0.2;
  m.moe.n_experts = 4;
  m.moe.d_ffn = 24;
  m.moe.selector.k = 2;
  return m;
}

}  // namespace

TEST_CASE("sim: a MoE forward makes at most one host synchronisation, its backward none (top-k, every aux loss, bias)",
          "[cuda]") {
  ModelConfig m = base();
  m.moe.aux.load_balance = 0.05;
  m.moe.aux.z_loss = 0.01;
  m.moe.aux.entropy = 0.01;
  m.moe.aux.bias_update_rate = 0.01;
  check_layer(m);
}

TEST_CASE("sim: a MoE forward makes at most one host synchronisation, its backward none (AoE, null experts)",
          "[cuda]") {
  ModelConfig m = base();
  m.moe.expert.type = "factorized";
  m.moe.expert.d_low = 8;
  m.moe.scorer.type = "act_norm";
  m.moe.selector.n_null = 2;
  m.moe.selector.k = 3;
  m.moe.aux.null_load_balance = 0.05;
  check_layer(m);
}

// AdamW over the ParamStore, with global-norm gradient clipping (formulas in core/backend.h's
// AdamWStep and docs/training.md). By default the moments m and v are laid out like the
// parameters. With ZeRO-1 (dist.zero: 1, docs/distributed.md) a rank keeps them only for its shard
// (train/zero_shard.h), updates only those elements, and all-gathers the updated parameters, so
// every rank again holds identical full parameters; the result is bit-identical to the unsharded
// update (AdamW is element-wise).
#pragma once

#include "config/config.h"
#include "core/tensor_buf.h"
#include "dist/dist.h"
#include "params/params.h"
#include "train/zero_shard.h"

#include <optional>
#include <vector>

namespace am {

class AdamW {
 public:
  // zero1 null: this rank holds the moments of every tensor of the store. Otherwise ZeRO-1: the
  // moments of this rank's shard over zero1's ranks (dense tensors over the world, expert weights
  // over the replica group); zero1 must outlive the optimizer.
  AdamW(ParamStore& store, const TrainConfig& cfg, const DistContext* zero1 = nullptr);

  // The global L2 norm of all gradients (before clipping), in one process.
  double grad_norm() const;
  // One update with learning rate lr. step is 0-based (bias correction uses step + 1);
  // grad_norm is the global gradient norm of these gradients. Sharded: collective (the
  // parameter all-gather).
  void update(int64_t step, double lr, double grad_norm);
  // The same update in one launch (Backend::adamw_update_multi) with the clip factor computed on
  // the device from norm_sq ((2) F64: global_grad_norm_sq), so no host value of the norm is
  // needed: bit-identical to update(step, lr, sqrt(norm_sq[0] + norm_sq[1])) on the CPU.
  void update_device(int64_t step, double lr, Tensor norm_sq);
  // grad_norm_spans of the store's table on the device (uploaded once): global_grad_norm_sq's spans.
  Tensor norm_spans() const { return norm_spans_; }

  // Non-finite updates. update() tags each tensor's AdamW call with its table index + 1, so the
  // backend's update flag (Backend::adamw_update) names the first tensor an update made non-finite.
  // The flag of the last forward (LossParts::update_flag, read with the losses), or read here on
  // its own (a host synchronisation: before a checkpoint).
  int read_update_flag() const;
  // UserError when flag != 0: the update of (1-based) step `step` made that tensor non-finite; the
  // run stops without writing a checkpoint.
  void check_update_flag(int flag, int64_t step) const;

  bool sharded() const { return shard_.has_value(); }
  const ZeroShard& shard() const;        // sharded only
  size_t state_bytes() const;            // bytes of m and v held by this rank
  size_t unsharded_state_bytes() const;  // what they would be without ZeRO-1

  enum class Moment { M, V };  // exp_avg, exp_avg_sq
  // Collective over the run's ranks when sharded. The moment of every tensor of the store as host
  // bytes laid out like its table (dtype of the store). Unsharded: this rank's moments. Sharded:
  // complete for the dense tensors on world rank 0 and for the expert weights on replica rank 0
  // (world ranks 0 .. ep-1, which the checkpoint writer reads them from); elements of other
  // ranks' shards are left zero on other ranks, and ranks that are neither get an empty vector.
  std::vector<char> gather_moment(Moment which) const;
  // Sets the moment of tensor i from host values (its numel elements, the store's dtype); a
  // sharded optimizer keeps only its piece of it.
  void set_moment(int i, Moment which, const void* host);

  // Unsharded only: the moments, laid out like the parameters.
  Tensor m(int i) const { return view(m_, i); }
  Tensor v(int i) const { return view(v_, i); }
  Tensor all_m() const;
  Tensor all_v() const;

 private:
  Tensor view(const TensorBuf& b, int i) const;
  Tensor state_part(Moment which, int64_t at, int64_t n) const;  // sharded: elements of m_ or v_
  void update_sharded(AdamWStep s);
  void gather_updated();  // sharded: every rank's updated pieces to every rank
  void upload_chunks();
  ParamStore& store_;
  TrainConfig cfg_;
  const DistContext* dist_ = nullptr;
  std::optional<ZeroShard> shard_;
  TensorBuf m_, v_;       // (total), or sharded: (shard numel) = dense pieces, then expert pieces
  TensorBuf flag_;        // (1): read_update_flag's copy of the backend's update flag
  TensorBuf chunks_;      // (rows, kAdamWChunkWords) I32: update_device's AdamWChunk table
  TensorBuf norm_spans_;  // (rows, kSumSquaresSpanWords) I32: norm_spans()
  double last_lr_ = 0;    // of the last update (for check_update_flag's message)
};

}  // namespace am

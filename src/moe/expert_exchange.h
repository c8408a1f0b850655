// Expert parallelism's token exchange (the all-to-all dispatcher's middle): this rank's
// assignment list is expert-major over all n experts, so the rows for the experts of group member
// r are one contiguous block. The exchange sends each block to its owner, which receives its
// experts' rows from every member (source-major), reorders them expert-major for the expert
// GEMMs, and sends the results back the same way. Per-expert counts travel first, so a rank or
// an expert with no tokens is an ordinary case. AoE's cached latent rows travel like token rows.
#pragma once

#include "core/tensor_buf.h"
#include "dist/comm.h"

#include <vector>

namespace am {

class ExpertExchange {
 public:
  ExpertExchange(Backend& be, Comm& ep_group, int n_experts);
  // From this rank's expert offsets (n+1): exchanges counts and plans the reordering.
  void plan(const std::vector<int64_t>& offsets);
  int64_t received_rows() const { return received_; }  // R: rows for this rank's experts
  // (n/ep + 1) offsets of the received rows, expert-major over this rank's experts.
  const std::vector<int64_t>& local_offsets() const { return local_offsets_; }

  // rows (A, w) of this rank's assignment list -> rows (R, w) for this rank's experts
  void to_experts(Tensor rows, Tensor out);
  // rows (R, w) of this rank's experts -> back to their sources, (A, w) in assignment order
  void from_experts(Tensor rows, Tensor out);

 private:
  Tensor scratch(int64_t rows, int64_t w, DType dt);  // (rows, w) of dt, reused
  Backend& be_;
  Comm& comm_;
  int n_, ep_, nl_;
  std::vector<int64_t> send_rows_, recv_rows_, local_offsets_;
  int64_t sent_ = 0, received_ = 0;
  TensorBuf to_local_, to_source_;  // (R) I32: source-major -> expert-major row, and back
  TensorBuf scratch_;
};

}  // namespace am

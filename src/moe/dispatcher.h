// Dispatcher: moves token rows to the experts that were chosen for them and the expert outputs
// back (Megatron's token_dispatcher). The local dispatcher keeps everything on this device; an
// expert-parallel all-to-all dispatcher implements the same interface later.
//
//   route:    selected slots (N,kmax) --capacity / null filter--> routed slots (N,kmax)
//             --route_build--> expert-major assignment list (A), offsets (n+1)
//   dispatch: x (N,d) --gather--> xg (A,d)      (row a holds token assign_slot[a] / kmax)
//             AoE: the cache C (N, n*d_low) --gather blocks--> cg (A,d_low)
//   combine:  eo (A,d) --gate-weighted sum per token--> y (N,d)
#pragma once

#include "core/tensor_buf.h"

#include <vector>

namespace am {

struct Routing {
  int kmax = 0;
  int64_t n_assign = 0;                 // A
  TensorBuf slot_expert;                // (N,kmax) I32: the selector's choice (ids >= n: null)
  TensorBuf slot_gate;                  // (N,kmax) gate weights
  TensorBuf routed;                     // (N,kmax) I32: slots that reach an expert, else -1
  TensorBuf assign_slot;                // (N*kmax) I32, first A used
  TensorBuf slot_assign;                // (N,kmax) I32, -1 = not routed
  std::vector<int64_t> expert_offsets;  // (n+1), host

  void allocate(Backend& be, int64_t n_tokens, int kmax);
};

class LocalDispatcher {
 public:
  explicit LocalDispatcher(Backend& be) : be_(be) {}
  // Drops null slots and, with capacity > 0, the lowest-scoring slots beyond each expert's
  // capacity (scores: the selection's rank scores); builds the assignment list.
  void route(Routing& r, int n_experts, Tensor scores, int64_t capacity);
  void dispatch(const Routing& r, Tensor x, Tensor xg);           // xg (>=A, d) write
  void dispatch_blocks(const Routing& r, Tensor c, Tensor cg);    // cg (>=A, d_low) write
  void combine(const Routing& r, Tensor eo, Tensor y);            // y (N,d) write
  // deo (A,d) write, dslot_gate (N,kmax) write
  void combine_backward(const Routing& r, Tensor dy, Tensor eo, Tensor deo, Tensor dslot_gate);
  void dispatch_backward(const Routing& r, Tensor dxg, Tensor dx);         // dx (N,d) acc
  void dispatch_blocks_backward(const Routing& r, Tensor dcg, Tensor dc);  // dc (N, n*d_low) acc

 private:
  Backend& be_;
};

}  // namespace am

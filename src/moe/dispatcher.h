// Dispatcher: moves token rows to the experts that were chosen for them and the expert outputs
// back (Megatron's token_dispatcher). The local dispatcher keeps everything on this device; the
// all-to-all dispatcher (all_to_all_dispatcher.h, expert parallelism) sends the rows to the ranks
// that hold their experts.
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

// Where this rank's experts find their rows for one micro-batch, and where they write.
struct ExpertBatch {
  Tensor x;                                       // (R, d) expert-major input rows
  Tensor latent;                                  // (R, d_low) AoE's cached latent rows, or empty
  Tensor out;                                     // (R, d) expert output rows (write)
  const std::vector<int64_t>* offsets = nullptr;  // (n_local + 1) row offsets of this rank's experts
};
// The backward's rows on the experts' side.
struct ExpertGrads {
  Tensor dy;       // (R, d) output gradient rows
  Tensor dx;       // (R, d) input gradient rows (write)
  Tensor dlatent;  // (R, d_low) latent gradient rows (write), or empty
};

// The token-level half (route, dispatch, combine and their backward) is the same for every
// dispatcher; what differs is how assignment rows reach the experts that compute them: on this
// device (LocalDispatcher: the rows themselves) or on the ranks of the expert-parallel group
// (AllToAllDispatcher: ExpertExchange's all-to-all). MoeLayer sees only this interface.
class Dispatcher {
 public:
  explicit Dispatcher(Backend& be) : be_(be) {}
  virtual ~Dispatcher() = default;

  // Drops null slots and, with capacity > 0, the lowest-scoring slots beyond each expert's
  // capacity (scores: the selection's rank scores); builds the assignment list.
  void route(Routing& r, int n_experts, Tensor scores, int64_t capacity);
  void dispatch(const Routing& r, Tensor x, Tensor xg);         // xg (>=A, d) write
  void dispatch_blocks(const Routing& r, Tensor c, Tensor cg);  // cg (>=A, d_low) write
  void combine(const Routing& r, Tensor eo, Tensor y);          // y (N,d) write
  // deo (A,d) write, dslot_gate (N,kmax) write
  void combine_backward(const Routing& r, Tensor dy, Tensor eo, Tensor deo, Tensor dslot_gate);
  void dispatch_backward(const Routing& r, Tensor dxg, Tensor dx);         // dx (N,d) acc
  void dispatch_blocks_backward(const Routing& r, Tensor dcg, Tensor dc);  // dc (N, n*d_low) acc

  // The most expert-side rows a micro-batch of max_assign assignments can give this rank's
  // experts; allocates the expert-side buffers (width d, latent d_low: 0 for none).
  virtual int64_t allocate(int64_t max_assign, int64_t d, int64_t d_low) = 0;
  // Forward: the assignment rows xg (A,d) and cg (A,d_low, or empty) to this rank's experts; the
  // batch's out rows reach eo (A,d) through from_experts.
  virtual ExpertBatch to_experts(const Routing& r, Tensor xg, Tensor cg, Tensor eo) = 0;
  virtual void from_experts(const ExpertBatch& b, Tensor eo) = 0;
  // Backward: deo (A,d) to the experts; their dx (and dlatent) rows back to dxg (A,d), dcg (A,d_low).
  virtual ExpertGrads grads_to_experts(const Routing& r, Tensor deo, Tensor dxg, Tensor dcg) = 0;
  virtual void grads_from_experts(const ExpertGrads& g, Tensor dxg, Tensor dcg) = 0;

 protected:
  Backend& be_;
};

// Everything on this device: the experts read and write the assignment rows themselves.
class LocalDispatcher final : public Dispatcher {
 public:
  using Dispatcher::Dispatcher;
  int64_t allocate(int64_t max_assign, int64_t, int64_t) override { return max_assign; }
  ExpertBatch to_experts(const Routing& r, Tensor xg, Tensor cg, Tensor eo) override;
  void from_experts(const ExpertBatch&, Tensor) override {}
  ExpertGrads grads_to_experts(const Routing& r, Tensor deo, Tensor dxg, Tensor dcg) override;
  void grads_from_experts(const ExpertGrads&, Tensor, Tensor) override {}
};

}  // namespace am

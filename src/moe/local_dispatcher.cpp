#include "moe/dispatcher.h"

namespace am {

void Routing::allocate(Backend& be, int64_t n_tokens, int k) {
  kmax = k;
  slot_expert = TensorBuf(be, DType::I32, {n_tokens, k});
  slot_gate = TensorBuf(be, be.dtype(), {n_tokens, k});
  routed = TensorBuf(be, DType::I32, {n_tokens, k});
  assign_slot = TensorBuf(be, DType::I32, {n_tokens * k});
  slot_assign = TensorBuf(be, DType::I32, {n_tokens, k});
}

void Dispatcher::route(Routing& r, int n_experts, Tensor scores, int64_t capacity) {
  be_.capacity_route(r.routed, r.slot_expert, scores, n_experts, capacity);
  r.n_assign = be_.route_build(r.assign_slot, r.slot_assign, r.expert_offsets, r.routed, n_experts);
}

void Dispatcher::dispatch(const Routing& r, Tensor x, Tensor xg) {
  be_.gather_rows(xg.rows(0, r.n_assign), x, r.assign_slot.t().rows(0, r.n_assign), r.kmax);
}

void Dispatcher::dispatch_blocks(const Routing& r, Tensor c, Tensor cg) {
  be_.gather_blocks(cg.rows(0, r.n_assign), c, r.assign_slot.t().rows(0, r.n_assign), r.routed);
}

void Dispatcher::combine(const Routing& r, Tensor eo, Tensor y) {
  be_.combine(y, eo.rows(0, r.n_assign), r.slot_gate, r.slot_assign);
}

void Dispatcher::combine_backward(const Routing& r, Tensor dy, Tensor eo, Tensor deo, Tensor dslot_gate) {
  be_.combine_backward(deo.rows(0, r.n_assign), dslot_gate, dy, eo.rows(0, r.n_assign), r.slot_gate, r.slot_assign);
}

void Dispatcher::dispatch_backward(const Routing& r, Tensor dxg, Tensor dx) {
  be_.scatter_rows_add(dx, dxg.rows(0, r.n_assign), r.slot_assign);
}

void Dispatcher::dispatch_blocks_backward(const Routing& r, Tensor dcg, Tensor dc) {
  be_.scatter_blocks_add(dc, dcg.rows(0, r.n_assign), r.assign_slot.t().rows(0, r.n_assign), r.routed);
}

ExpertBatch LocalDispatcher::to_experts(const Routing& r, Tensor xg, Tensor cg, Tensor eo) {
  const int64_t A = r.n_assign;
  return ExpertBatch{xg.rows(0, A), cg.data ? cg.rows(0, A) : Tensor(), eo.rows(0, A), &r.expert_offsets};
}

ExpertGrads LocalDispatcher::grads_to_experts(const Routing& r, Tensor deo, Tensor dxg, Tensor dcg) {
  const int64_t A = r.n_assign;
  return ExpertGrads{deo.rows(0, A), dxg.rows(0, A), dcg.data ? dcg.rows(0, A) : Tensor()};
}

}  // namespace am

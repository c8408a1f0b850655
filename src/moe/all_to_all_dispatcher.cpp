#include "moe/all_to_all_dispatcher.h"

namespace am {

AllToAllDispatcher::AllToAllDispatcher(Backend& be, Comm& ep_group, int n_experts)
    : Dispatcher(be), exchange_(be, ep_group, n_experts), ep_(ep_group.size()) {}

// This rank's experts may receive every member's rows.
int64_t AllToAllDispatcher::allocate(int64_t max_assign, int64_t d, int64_t d_low) {
  const int64_t max_local = max_assign * ep_;
  const DType dt = be_.dtype();
  for (TensorBuf* t : {&xl_, &eol_}) *t = TensorBuf(be_, be_.act_dtype(), {max_local, d});  // saved
  for (TensorBuf* t : {&deol_, &dxl_}) *t = TensorBuf(be_, dt, {max_local, d});
  if (d_low > 0) {
    cl_ = TensorBuf(be_, be_.act_dtype(), {max_local, d_low});
    dcl_ = TensorBuf(be_, dt, {max_local, d_low});
  }
  return max_local;
}

ExpertBatch AllToAllDispatcher::to_experts(const Routing& r, Tensor xg, Tensor cg, Tensor) {
  const int64_t A = r.n_assign;
  exchange_.plan(r.expert_offsets);
  const int64_t R = exchange_.received_rows();
  exchange_.to_experts(xg.rows(0, A), xl_);
  if (cg.data) exchange_.to_experts(cg.rows(0, A), cl_);
  return ExpertBatch{Tensor(xl_).rows(0, R), cg.data ? Tensor(cl_).rows(0, R) : Tensor(), Tensor(eol_).rows(0, R),
                     &exchange_.local_offsets()};
}

void AllToAllDispatcher::from_experts(const ExpertBatch& b, Tensor eo) { exchange_.from_experts(b.out, eo); }

ExpertGrads AllToAllDispatcher::grads_to_experts(const Routing& r, Tensor deo, Tensor, Tensor dcg) {
  const int64_t A = r.n_assign, R = exchange_.received_rows();
  exchange_.to_experts(deo.rows(0, A), deol_);
  return ExpertGrads{Tensor(deol_).rows(0, R), Tensor(dxl_).rows(0, R), dcg.data ? Tensor(dcl_).rows(0, R) : Tensor()};
}

void AllToAllDispatcher::grads_from_experts(const ExpertGrads& g, Tensor dxg, Tensor dcg) {
  exchange_.from_experts(g.dx, dxg);
  if (g.dlatent.data) exchange_.from_experts(g.dlatent, dcg);
}

}  // namespace am

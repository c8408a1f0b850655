// The expert-parallel dispatcher: this rank holds n/ep of the layer's experts; the assignment
// rows travel to the group members that hold their experts and the results come back through
// ExpertExchange's all-to-all (the counts exchange is the host step of each forward).
#pragma once

#include "moe/dispatcher.h"
#include "moe/expert_exchange.h"

namespace am {

class AllToAllDispatcher final : public Dispatcher {
 public:
  AllToAllDispatcher(Backend& be, Comm& ep_group, int n_experts);
  int64_t allocate(int64_t max_assign, int64_t d, int64_t d_low) override;
  ExpertBatch to_experts(const Routing& r, Tensor xg, Tensor cg, Tensor eo) override;
  void from_experts(const ExpertBatch& b, Tensor eo) override;
  ExpertGrads grads_to_experts(const Routing& r, Tensor deo, Tensor dxg, Tensor dcg) override;
  void grads_from_experts(const ExpertGrads& g, Tensor dxg, Tensor dcg) override;

 private:
  ExpertExchange exchange_;
  int ep_;
  TensorBuf xl_, cl_, eol_;     // (max_assign * ep, d | d_low | d): the rows this rank's experts received
  TensorBuf deol_, dxl_, dcl_;  // backward
};

}  // namespace am

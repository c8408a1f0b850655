#include "moe/expert_exchange.h"

namespace am {

ExpertExchange::ExpertExchange(Backend& be, Comm& ep_group, int n_experts)
    : be_(be), comm_(ep_group), n_(n_experts), ep_(ep_group.size()), nl_(n_experts / ep_group.size()) {
  AM_CHECK(n_ % ep_ == 0, "{} experts over {} ranks", n_, ep_);
}

void ExpertExchange::plan(const std::vector<int64_t>& off) {
  AM_CHECK(static_cast<int>(off.size()) == n_ + 1, "{} offsets for {} experts", off.size(), n_);
  // counts[r * nl + j]: rows this rank sends for expert j of member r
  std::vector<int64_t> counts(static_cast<size_t>(n_));
  for (int e = 0; e < n_; ++e) counts[e] = off[e + 1] - off[e];
  const std::vector<int64_t> got = comm_.all_to_all(counts, nl_);  // got[src * nl + j]
  send_rows_.assign(ep_, 0);
  recv_rows_.assign(ep_, 0);
  for (int r = 0; r < ep_; ++r) {
    for (int j = 0; j < nl_; ++j) {
      send_rows_[r] += counts[r * nl_ + j];
      recv_rows_[r] += got[r * nl_ + j];
    }
  }
  sent_ = off[n_] - off[0];
  received_ = 0;
  for (int64_t x : recv_rows_) received_ += x;

  // Received rows are source-major (src, then expert j); the experts want expert-major (j, then
  // src). to_local[k] = received row of expert-major row k; to_source is its inverse.
  std::vector<int64_t> src_base(ep_, 0), within(static_cast<size_t>(ep_ * nl_), 0);
  for (int s = 1; s < ep_; ++s) src_base[s] = src_base[s - 1] + recv_rows_[s - 1];
  for (int s = 0; s < ep_; ++s) {
    for (int j = 1; j < nl_; ++j) within[s * nl_ + j] = within[s * nl_ + j - 1] + got[s * nl_ + j - 1];
  }
  std::vector<int32_t> to_local(static_cast<size_t>(received_)), to_source(static_cast<size_t>(received_));
  local_offsets_.assign(nl_ + 1, 0);
  int64_t k = 0;
  for (int j = 0; j < nl_; ++j) {
    for (int s = 0; s < ep_; ++s) {
      for (int64_t i = 0; i < got[s * nl_ + j]; ++i, ++k) {
        const int64_t src_row = src_base[s] + within[s * nl_ + j] + i;
        to_local[k] = static_cast<int32_t>(src_row);
        to_source[src_row] = static_cast<int32_t>(k);
      }
    }
    local_offsets_[j + 1] = k;
  }
  const int64_t cap = std::max<int64_t>(received_, 1);
  if (to_local_.empty() || to_local_.t().numel() < cap) {
    to_local_ = TensorBuf(be_, DType::I32, {cap});
    to_source_ = TensorBuf(be_, DType::I32, {cap});
  }
  if (received_ > 0) {
    be_.upload(to_local_.t().rows(0, received_), to_local.data());
    be_.upload(to_source_.t().rows(0, received_), to_source.data());
  }
}

Tensor ExpertExchange::scratch(int64_t rows, int64_t w, DType dt) {
  const size_t need = std::max<size_t>(static_cast<size_t>(rows * w) * dtype_size(dt), 1);
  if (scratch_.empty() || scratch_.t().nbytes() < need) {
    scratch_ = TensorBuf(be_, DType::F32, {static_cast<int64_t>((need + 3) / 4)});
  }
  return Tensor(scratch_.t().data, dt, {rows, w});
}

void ExpertExchange::to_experts(Tensor rows, Tensor out) {
  const int64_t w = rows.dim(1);
  Tensor recv = scratch(received_, w, rows.dtype);  // source-major
  comm_.all_to_all_rows(rows.rows(0, sent_), send_rows_, recv, recv_rows_);
  if (received_ > 0) be_.gather_rows(out.rows(0, received_), recv, to_local_.t().rows(0, received_), 1);
}

void ExpertExchange::from_experts(Tensor rows, Tensor out) {
  const int64_t w = rows.dim(1);
  Tensor back = scratch(received_, w, rows.dtype);  // source-major
  if (received_ > 0) be_.gather_rows(back, rows.rows(0, received_), to_source_.t().rows(0, received_), 1);
  comm_.all_to_all_rows(back, recv_rows_, out.rows(0, sent_), send_rows_);
}

}  // namespace am

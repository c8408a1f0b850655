#include "dist/comm.h"

#include "core/error.h"

#include <algorithm>
#include <numeric>

namespace am {

MessageSizeError::MessageSizeError(const std::string& what, size_t expected_bytes, size_t received_bytes, bool at_least,
                                   int from_rank)
    : UserError(fmt::format("{}: expected a message of {} bytes from rank {}, received {}{} bytes",
                            what.empty() ? "point-to-point message" : what, expected_bytes, from_rank,
                            at_least ? "at least " : "", received_bytes),
                "the ranks disagree about what they exchange: run every rank with the same config and the same "
                "build of autonomoe"),
      expected(expected_bytes),
      received(received_bytes),
      from(from_rank) {}

void recv_expecting(Comm& comm, void* host, size_t bytes, int from, const std::string& what) {
  try {
    comm.recv(host, bytes, from);
  } catch (const MessageSizeError& e) {
    throw MessageSizeError(what, e.expected, e.received, e.received > e.expected, e.from);
  }
}

void check_gather_parts(const Tensor& t, const std::vector<int64_t>& counts, const std::vector<int64_t>& offsets,
                        int ranks) {
  AM_CHECK(static_cast<int>(counts.size()) == ranks && static_cast<int>(offsets.size()) == ranks,
           "all-gather over {} ranks with {} counts and {} offsets", ranks, counts.size(), offsets.size());
  std::vector<int> order(static_cast<size_t>(ranks));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return offsets[a] < offsets[b]; });
  int64_t end = 0;  // of the previous part, in offset order
  for (int r : order) {
    AM_CHECK(counts[r] >= 0 && offsets[r] >= 0 && offsets[r] + counts[r] <= t.numel(),
             "all-gather part of rank {} ({} elements at {}) outside the tensor of {}", r, counts[r], offsets[r],
             t.numel());
    AM_CHECK(counts[r] == 0 || offsets[r] >= end, "all-gather part of rank {} overlaps another", r);
    if (counts[r] > 0) end = offsets[r] + counts[r];
  }
}

}  // namespace am

#include "dist/comm.h"

#include "core/error.h"

namespace am {
namespace {

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  void all_reduce_sum(Tensor) override {}
  void all_reduce_sum_start(Tensor) override {}
  void wait() override {}
  double all_reduce_sum(double x) override { return x; }
  void all_reduce_sum(std::vector<int64_t>&) override {}
  void all_reduce_sum_values(std::vector<double>&) override {}
  std::vector<int64_t> all_to_all(const std::vector<int64_t>& send, int) override { return send; }
  void all_to_all_rows(Tensor send, const std::vector<int64_t>& send_rows, Tensor recv,
                       const std::vector<int64_t>& recv_rows) override {
    AM_CHECK(send_rows.size() == 1 && recv_rows.size() == 1 && send_rows[0] == recv_rows[0],
             "single-process row exchange of {} rows into {}", send_rows[0], recv_rows[0]);
    // The caller copies through the backend when the buffers differ (host or device memory).
    AM_CHECK(send.data == recv.data, "single-process row exchange needs send == recv");
  }
  void all_gather(Tensor t, const std::vector<int64_t>& counts, const std::vector<int64_t>& offsets) override {
    check_gather_parts(t, counts, offsets, 1);  // the one part is already in place
  }
  void broadcast(void*, size_t, int root) override { AM_CHECK(root == 0, "broadcast from rank {}", root); }
  void send(const void*, size_t, int to) override { AM_CHECK(false, "send to rank {} in a single process", to); }
  void recv(void*, size_t, int from) override { AM_CHECK(false, "recv from rank {} in a single process", from); }
  void barrier() override {}
  std::unique_ptr<Comm> split(int, int) override { return std::make_unique<SingleComm>(); }
};

}  // namespace

std::unique_ptr<Comm> make_single_comm() { return std::make_unique<SingleComm>(); }

}  // namespace am

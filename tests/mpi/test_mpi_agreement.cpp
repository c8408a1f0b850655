// Ranks that disagree (mpirun -np 2): the start-up check of the run facts (dist/rank_agreement.h)
// names the first difference on every rank; point-to-point messages of another size than the
// receiver expects are refused (Comm::recv, recv_expecting); train() with a different config
// on rank 1 stops on both ranks before anything that would hang.
#include "data/synthetic.h"
#include "dist/launch.h"
#include "dist/rank_agreement.h"
#include "train/run_facts.h"
#include "train/trainer.h"

#include <mpi.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace am;
namespace fs = std::filesystem;

namespace {

Comm& world() {
  static MPI_Comm handle = MPI_COMM_WORLD;
  static std::unique_ptr<Comm> comm = make_mpi_comm(&handle);
  return *comm;
}

bool rank1() { return world().rank() == 1; }

// The message of the UserError that require_ranks_agree() throws on this rank ("" if none).
std::string agreement_error(const std::vector<RunFact>& facts) {
  try {
    require_ranks_agree(world(), facts);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("ranks that agree pass; the first difference is named on every rank", "[mpi][agree]") {
  const std::vector<RunFact> base = {{"run.seed", "0"}, {"train.max_steps", "6"}, {"model.moe.d_ffn", "24"}};
  CHECK(agreement_error(base).empty());

  const std::vector<RunFact> other = {{"run.seed", "0"}, {"train.max_steps", "7"}, {"model.moe.d_ffn", "48"}};
  std::vector<RunFact> mine = rank1() ? other : base;  // a later difference (d_ffn) is not the one reported
  const std::string msg = agreement_error(mine);
  INFO(msg);
  CHECK(msg.find("the ranks disagree on train.max_steps: rank 0 has 6, rank 1 has 7") != std::string::npos);
  CHECK(msg.find("HINT") != std::string::npos);

  // a fact only rank 1 has (e.g. one more data file)
  mine = base;
  if (rank1()) mine.push_back({"data.train file 2", "b.bin"});
  CHECK_THAT(agreement_error(mine),
             Catch::Contains("the ranks disagree: rank 0 has nothing more, rank 1 has data.train file 2 = b.bin"));
  // a fact only rank 0 has
  mine = base;
  if (!rank1()) mine.push_back({"data.val files", "1"});
  CHECK_THAT(agreement_error(mine),
             Catch::Contains("the ranks disagree: rank 0 has data.val files = 1, rank 1 has nothing more"));
}

TEST_CASE("a message of another size than expected is refused, naming what it was", "[mpi][agree]") {
  for (const size_t sent : {size_t{8}, size_t{24}}) {
    std::vector<char> buf(32, 1);
    if (rank1()) {
      world().send(buf.data(), sent, 0);
    } else {
      std::vector<char> into(16, 0);
      try {
        recv_expecting(world(), into.data(), into.size(), 1, "tensor experts.3.w1 of the checkpoint");
        FAIL("a message of " << sent << " bytes was received as 16");
      } catch (const MessageSizeError& e) {
        INFO(e.what());
        CHECK_THAT(std::string(e.what()),
                   Catch::Contains(fmt::format("tensor experts.3.w1 of the checkpoint: expected a message of 16 "
                                               "bytes from rank 1, received {}{} bytes",
                                               sent > 16 ? "at least " : "", sent)));
      }
      CHECK(into == std::vector<char>(16, 0));                                                // nothing was written
      MPI_Recv(buf.data(), 32, MPI_BYTE, 1, MPI_ANY_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);  // drain it
    }
    world().barrier();
  }
  // the expected size passes
  std::vector<char> buf(16, 2);
  if (rank1())
    world().send(buf.data(), buf.size(), 0);
  else
    recv_expecting(world(), buf.data(), buf.size(), 1, "sixteen bytes");
  world().barrier();
}

TEST_CASE("train() with another config on rank 1 stops on both ranks", "[mpi][agree]") {
  char path[512] = {0};
  if (!rank1()) {
    std::string tmpl = (fs::temp_directory_path() / "autonomoe-mpi-agree-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    std::snprintf(path, sizeof path, "%s", tmpl.c_str());
    write_synthetic_dataset(std::string(path) + "/data", "synth", 32, 20000, 4000, 1);
    std::ofstream(std::string(path) + "/run.yaml") << "run: {threads: 1, backend: cpu}\n";
  }
  world().broadcast(path, sizeof path, 0);
  const std::string dir = path;
  const std::vector<std::string> sets = {"run.out_dir=" + dir + "/runs",
                                         "data.train=" + dir + "/data/synth_train_*.bin",
                                         "data.val=",
                                         "data.seq_len=16",
                                         "model.vocab_size=32",
                                         "model.d_model=16",
                                         "model.n_layers=1",
                                         "model.n_heads=2",
                                         "model.max_seq_len=16",
                                         "model.moe.n_experts=4",
                                         "model.moe.d_ffn=24",
                                         "train.lr=0.01",
                                         "train.global_batch=4",
                                         "train.micro_batch_size=2",
                                         "train.max_steps=3",
                                         "dist.ep=2"};
  TrainOptions o;
  o.handle_signals = false;
  o.world = &world();
  for (const std::string& differ : {std::string("train.max_steps=4"), std::string("model.moe.d_ffn=48")}) {
    std::vector<std::string> mine = sets;
    mine.push_back("run.name=" + differ);
    if (rank1()) mine.push_back(differ);
    const std::string key = differ.substr(0, differ.find('='));
    CHECK_THROWS_WITH(
        train(load_config(dir + "/run.yaml", mine), o),
        Catch::Contains(fmt::format("the ranks disagree on {}: rank 0 has {}, rank 1 has {}", key,
                                    key == "train.max_steps" ? "3" : "24", differ.substr(differ.find('=') + 1))));
    CHECK_FALSE(fs::exists(dir + "/runs/" + differ + "/checkpoints"));  // stopped before any checkpoint
  }
  world().barrier();
  if (!rank1()) fs::remove_all(dir);
}

TEST_CASE("a data file's fact: its size and a hash of its start and end", "[mpi][agree]") {
  if (rank1()) return;
  const fs::path p = fs::temp_directory_path() / "autonomoe-fact.bin";
  std::string bytes(200 * 1024, 'a');  // the first and last 4 KiB are sampled
  std::ofstream(p, std::ios::binary) << bytes;
  const std::string a = data_file_fact(p.string());
  CHECK_THAT(a, Catch::Contains("204800 bytes, sampled xxh3 "));
  bytes.back() = 'b';  // a change at the end shows
  std::ofstream(p, std::ios::binary) << bytes;
  const std::string b = data_file_fact(p.string());
  CHECK(b != a);
  bytes.back() = 'a';
  bytes[100 * 1024] = 'b';  // the middle is not sampled (documented)
  std::ofstream(p, std::ios::binary) << bytes;
  CHECK(data_file_fact(p.string()) == a);
  fs::remove(p);
}

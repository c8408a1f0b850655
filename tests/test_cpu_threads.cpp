// The CPU thread-count rule (cpu/threads.h): run.threads, then OMP_NUM_THREADS, then the cores,
// shared among the ranks of a node unless the launcher bound each rank to its share.
#include "cpu/threads.h"

#include <catch2/catch.hpp>

using namespace am;

TEST_CASE("cpu threads: run.threads wins, then OMP_NUM_THREADS, then the cores", "[cpu]") {
  CHECK(choose_cpu_threads(3, "8", 16, 16, 1).threads == 3);
  CHECK(choose_cpu_threads(3, "8", 16, 16, 1).source == "run.threads");
  CHECK(choose_cpu_threads(0, "8", 16, 16, 1).threads == 8);
  CHECK(choose_cpu_threads(0, "8", 16, 16, 4).threads == 8);    // the user's setting, also under mpirun
  CHECK(choose_cpu_threads(0, "4,2", 16, 16, 1).threads == 4);  // nested levels: the first
  CHECK(choose_cpu_threads(0, "8", 16, 16, 1).source == "OMP_NUM_THREADS");
  CHECK(choose_cpu_threads(0, nullptr, 16, 16, 1).threads == 16);
  CHECK(choose_cpu_threads(0, nullptr, 16, 16, 1).source == "16 cores available");
  CHECK(choose_cpu_threads(0, nullptr, 0, 16, 1).threads == 1);
}

TEST_CASE("cpu threads: OMP_NUM_THREADS that is not a count is ignored, and said so", "[cpu]") {
  for (const char* bad : {"", "0", "abc", "4x", "-2"}) {
    INFO(bad);
    const ThreadChoice c = choose_cpu_threads(0, bad, 16, 16, 1);
    CHECK(c.threads == 16);
  }
  CHECK(choose_cpu_threads(0, "abc", 16, 16, 1).source ==
        "OMP_NUM_THREADS='abc' is not a count, ignored; 16 cores available");
}

TEST_CASE("cpu threads: under mpirun the cores of a node are divided among its ranks", "[cpu]") {
  CHECK(choose_cpu_threads(0, nullptr, 16, 16, 4).threads == 4);
  CHECK(choose_cpu_threads(0, nullptr, 16, 16, 4).source == "16 cores shared by 4 ranks on this node");
  CHECK(choose_cpu_threads(0, nullptr, 16, 16, 3).threads == 5);
  CHECK(choose_cpu_threads(0, nullptr, 2, 2, 4).threads == 1);  // oversubscribed: at least 1
  // the launcher bound each rank to its own cores: take them all
  CHECK(choose_cpu_threads(0, nullptr, 4, 16, 4).threads == 4);
  CHECK(choose_cpu_threads(0, nullptr, 1, 16, 4).threads == 1);
}

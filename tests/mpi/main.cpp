// The Catch2 main of the multi-process tests: run under `mpirun -np 2` (ctest does). Every rank
// runs every test; the tests synchronise through MPI themselves.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <mpi.h>
#include <spdlog/spdlog.h>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    std::printf("the multi-process tests need exactly 2 ranks (mpirun -np 2), got %d\n", size);
    MPI_Finalize();
    return 1;
  }
  spdlog::set_level(spdlog::level::warn);  // the runs' start-up tables would bury the results
  const int rc = Catch::Session().run(argc, argv);
  int worst = rc;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}

#include "dist/launch.h"

#include "core/error.h"

#include <mpi.h>
#ifdef AM_HAVE_CUDA
#include "nccl_comm.h"
#endif
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace am {
namespace {
bool g_mpi = false;

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
}  // namespace

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

void init_distributed(int* argc, char*** argv) {
  if (g_mpi || !launched_by_mpi()) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    std::atexit(finalize_mpi);
  }
  g_mpi = true;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) spdlog::set_level(spdlog::level::warn);
}

bool mpi_active() { return g_mpi; }

int local_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    if (const char* s = std::getenv(v)) return std::atoi(s);
  }
  return 0;
}

void abort_job(int code) {
  if (g_mpi) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
  std::exit(code);
}

std::unique_ptr<Comm> make_job_comm() {
  if (!g_mpi) return make_single_comm();
  MPI_Comm world = MPI_COMM_WORLD;
  return make_mpi_comm(&world);
}

std::unique_ptr<Comm> make_world_comm(const std::string& kind, const std::string& backend) {
  if (kind == "nccl" && backend != "cuda") {
    throw UserError(fmt::format("dist.comm is nccl but the run's backend is {}: NCCL moves GPU buffers", backend),
                    "use run.backend: cuda (or auto on a machine with a GPU), or dist.comm: auto / mpi");
  }
  if (kind == "mpi" && backend == "cuda") {
    // MPI would read and write the tensors' device memory from the host, with no ordering against
    // the kernels on the device.
    throw UserError(
        "dist.comm is mpi but the run's backend is cuda: MPI moves host buffers, and the CUDA "
        "backend's tensors are in GPU memory",
        "use dist.comm: auto or nccl with run.backend: cuda, or run.backend: cpu with dist.comm: mpi");
  }
  if (kind == "nccl" || (kind == "auto" && backend == "cuda")) {
#ifdef AM_HAVE_CUDA
    // Host-side traffic (counts, checkpoints) over MPI, or nothing for one process.
    MPI_Comm world = MPI_COMM_WORLD;
    return make_nccl_comm(g_mpi ? make_mpi_comm(&world) : make_single_comm());
#else
    throw UserError("dist.comm nccl needs the CUDA build (nvcc was not found when this was built)",
                    "use dist.comm: mpi or auto with run.backend: cpu");
#endif
  }
  if (kind == "single" || (kind == "auto" && !g_mpi)) {
    if (g_mpi) {
      int size = 1;
      MPI_Comm_size(MPI_COMM_WORLD, &size);
      if (size > 1) {
        throw UserError(fmt::format("dist.comm is single but mpirun started {} processes", size),
                        "use dist.comm: auto or mpi, or run one process");
      }
    }
    return make_single_comm();
  }
  if (!g_mpi) {
    throw UserError("dist.comm is mpi but this process was not started by mpirun",
                    "launch with `mpirun -np N autonomoe train ...` (scripts/launch.sh), or use dist.comm: auto");
  }
  MPI_Comm world = MPI_COMM_WORLD;
  return make_mpi_comm(&world);
}

}  // namespace am

// Process launch: mpirun (or srun) starts one process per rank; a process started alone is a
// single-process run. MPI is initialised only when a launcher is detected (its environment
// variables), so plain runs never touch it.
#pragma once

#include "dist/comm.h"

#include <memory>
#include <string>

namespace am {

// True when OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK says an MPI launcher started us.
bool launched_by_mpi();
// MPI_Init when launched_by_mpi() (once); MPI_Finalize runs at exit. Quiet on non-zero ranks:
// they log warnings and errors only.
void init_distributed(int* argc, char*** argv);
bool mpi_active();
// The rank on this node (picks the GPU): OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, else 0.
int local_rank();
// Ends every rank of the job (MPI_Abort) after a fatal error on this one; plain exit otherwise.
[[noreturn]] void abort_job(int code);
// The world communicator for dist.comm (auto | single | mpi | nccl) and the run's backend.
// UserError for nccl with a backend other than cuda, and for mpi with cuda (MPI would touch
// device memory from the host).
std::unique_ptr<Comm> make_world_comm(const std::string& kind, const std::string& backend);
// The job's processes for host-side coordination (a sweep's decisions and results): MPI's world
// when mpirun started this process, else a single-process communicator.
std::unique_ptr<Comm> make_job_comm();
// A communicator over an MPI_Comm (pointer to it); the world's and MPI_COMM_SELF's (tests).
std::unique_ptr<Comm> make_mpi_comm(void* mpi_comm);

}  // namespace am

// Comm over NCCL for device buffers (the CUDA backend): all-reduce, the row all-to-all and the
// all-gather run on the GPU; host-side calls (counts, scalars, checkpoint gathering, barriers) go
// through `host` (MPI under mpirun, or the single-process communicator). The NCCL communicator is
// created from a unique id that rank 0 draws and broadcasts over `host`.
#pragma once

#include "dist/comm.h"

#include <memory>

namespace am {

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> host);

}  // namespace am

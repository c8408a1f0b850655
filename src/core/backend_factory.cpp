#include "core/backend.h"
#include "cpu/cpu_backend.h"
#ifdef AM_HAVE_CUDA
#include "cuda_backend.h"
#endif

#include "dist/launch.h"

#include <spdlog/spdlog.h>

namespace am {

std::unique_ptr<Backend> make_backend(const std::string& kind, DType dtype, int threads) {
  if (kind == "cpu") return make_cpu_backend(dtype, threads);
#ifdef AM_HAVE_CUDA
  const bool device = cuda_device_available();
  if (kind == "cuda") {
    if (!device) {
      throw UserError("run.backend is cuda but no CUDA device is visible",
                      "use run.backend: cpu or auto (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
    }
    if (dtype == DType::F64) throw UserError("run.precision fp64 needs run.backend: cpu");
    return make_cuda_backend(dtype, local_rank());
  }
  if (kind == "auto") {
    if (device && cuda_backend_complete() && dtype != DType::F64) return make_cuda_backend(dtype, local_rank());
    if (device) {
      spdlog::warn("a CUDA device is present but the CUDA backend does not implement every op yet; "
                   "training on the CPU");
    }
    return make_cpu_backend(dtype, threads);
  }
#else
  if (kind == "cuda") {
    throw UserError("run.backend is cuda but this build has no CUDA backend (nvcc was not found "
                    "when it was configured)",
                    "use run.backend: cpu or auto, or rebuild where nvcc is on PATH");
  }
  if (kind == "auto") return make_cpu_backend(dtype, threads);
#endif
  throw UserError(fmt::format("unknown backend '{}'", kind), "valid backends: cpu, cuda, auto");
}

}  // namespace am

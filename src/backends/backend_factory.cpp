// make_backend: see backend_factory.h.
#include "backends/backend_factory.h"

#include "cpu/cpu_backend.h"
#ifdef AM_HAVE_CUDA
#include "cuda_backend.h"
#endif

#include "dist/launch.h"

namespace am {

std::unique_ptr<Backend> make_backend(const std::string& kind, Precision precision, int threads) {
  const DType dtype = precision_dtype(precision);
  const bool bf16 = precision == Precision::BF16;
  if (kind == "cpu") return make_cpu_backend(dtype, threads, bf16);
#ifdef AM_HAVE_CUDA
  const bool device = cuda_device_available();
  if (kind == "cuda") {
    if (!device) {
      throw UserError("run.backend is cuda but no CUDA device is visible",
                      "use run.backend: cpu or auto (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
    }
    if (dtype == DType::F64) throw UserError("run.precision fp64 needs run.backend: cpu");
    return make_cuda_backend(dtype, local_rank(), bf16);
  }
  if (kind == "auto") {
#ifndef AM_CUDA_SIM  // the simulator is for tests: only run.backend: cuda selects it
    if (device && dtype != DType::F64) return make_cuda_backend(dtype, local_rank(), bf16);
#endif
    return make_cpu_backend(dtype, threads, bf16);
  }
#else
  if (kind == "cuda") {
    throw UserError(
        "run.backend is cuda but this build has no CUDA backend (nvcc was not found "
        "when it was configured)",
        "use run.backend: cpu or auto, or rebuild where nvcc is on PATH");
  }
  if (kind == "auto") return make_cpu_backend(dtype, threads, bf16);
#endif
  throw UserError(fmt::format("unknown backend '{}'", kind), "valid backends: cpu, cuda, auto");
}

}  // namespace am

// The Catch2 main of the CUDA parity tests. Without a usable CUDA device it runs nothing, says so,
// and exits 77, which ctest reports as "Skipped" (never as passed). In the simulator build it says
// that the tests run on the simulator, and under which schedules (docs/simulator.md). Under mpirun
// it starts MPI first (the [np2] tests: NCCL over two ranks; ctest sim_comm_streams_np2).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "cuda_backend.h"
#include "dist/launch.h"

#include <cstdio>
#include <cstring>
#include <string>
#ifdef AM_CUDA_SIM
#include "am_sim/sim.h"
#endif

int main(int argc, char** argv) {
  am::init_distributed(&argc, &argv);
  if (!am::cuda_device_available()) {
    std::printf("skipped: no CUDA device; the CUDA parity tests did not run\n");
    return 77;
  }
#ifdef AM_CUDA_SIM
  // --sim-schedule=S, --sim-racecheck=S|off, --sim-streams=eager|lazy (as AM_SIM_* in the
  // environment; ctest passes them so that each schedule is its own set of tests).
  am::sim::Settings& s = am::sim::settings();
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* key) { return a.rfind(key, 0) == 0 ? a.substr(std::strlen(key)) : std::string(); };
    if (const std::string v = value("--sim-schedule="); !v.empty()) {
      s.schedule = am::sim::parse_schedule(v);
    } else if (const std::string v = value("--sim-racecheck="); !v.empty()) {
      s.racecheck = v != "off";
      if (s.racecheck) s.racecheck_schedule = am::sim::parse_schedule(v);
    } else if (const std::string v = value("--sim-streams="); !v.empty()) {
      s.lazy_streams = v == "lazy";
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  std::fprintf(stderr, "running on the CUDA simulator (CPU, no GPU): schedule %s, race check %s, %s streams\n",
               s.schedule.name().c_str(), s.racecheck ? s.racecheck_schedule.name().c_str() : "off",
               s.lazy_streams ? "lazy" : "eager");
#endif
  return Catch::Session().run(argc, argv);
}

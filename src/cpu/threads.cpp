#include "cpu/threads.h"

#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

namespace am {
namespace {

// The first number of an OMP_NUM_THREADS value ("4" or "4,2"), or 0 when it has none.
int first_count(const char* text) {
  const char* end = text + std::strlen(text);
  int n = 0;
  const auto [p, ec] = std::from_chars(text, end, n);
  const bool whole = ec == std::errc() && (p == end || *p == ',');
  return whole && n > 0 ? n : 0;
}

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

}  // namespace

ThreadChoice choose_cpu_threads(int configured, const char* omp_num_threads, int available, int node_cpus,
                                int local_ranks) {
  if (configured > 0) return {configured, "run.threads"};
  if (omp_num_threads && first_count(omp_num_threads) > 0) {
    return {first_count(omp_num_threads), "OMP_NUM_THREADS"};
  }
  available = std::max(available, 1);
  const std::string unset = omp_num_threads && *omp_num_threads
                                ? fmt::format("OMP_NUM_THREADS='{}' is not a count, ignored; ", omp_num_threads)
                                : "";
  if (local_ranks > 1 && available >= node_cpus) {
    return {std::max(available / local_ranks, 1),
            fmt::format("{}{} cores shared by {} ranks on this node", unset, available, local_ranks)};
  }
  return {available, fmt::format("{}{} cores available", unset, available)};
}

ThreadChoice cpu_threads(int configured) {
  const int local = std::max(env_int("OMPI_COMM_WORLD_LOCAL_SIZE"), env_int("MPI_LOCALNRANKS"));
  const int node = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return choose_cpu_threads(configured, std::getenv("OMP_NUM_THREADS"), omp_get_num_procs(), node, local);
}

std::string omp_wait_description() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  const bool ours = std::getenv(kOmpReexecMarker) != nullptr;
  std::string out;
  if (policy)
    out = fmt::format("OMP_WAIT_POLICY={} ({})", policy, ours ? "autonomoe's default" : "from the environment");
  if (spin) out += fmt::format("{}GOMP_SPINCOUNT={} (from the environment)", out.empty() ? "" : ", ", spin);
  return out.empty() ? "OpenMP's default wait policy" : out;
}

void reexec_with_passive_omp_wait(char** argv) {
  if (std::getenv(kOmpReexecMarker) || std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  setenv(kOmpReexecMarker, "1", 1);
  execv("/proc/self/exe", argv);
  unsetenv("OMP_WAIT_POLICY");  // no /proc (or no exec): carry on with OpenMP's default
  unsetenv(kOmpReexecMarker);
}

}  // namespace am

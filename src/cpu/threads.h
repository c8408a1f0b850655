// How many OpenMP threads a CPU backend runs, and how OpenMP waits (docs/benchmarks.md, "CPU
// threads, and OpenMP on a busy machine").
#pragma once

#include <string>

namespace am {

struct ThreadChoice {
  int threads = 1;
  std::string source;  // why: "run.threads", "OMP_NUM_THREADS", "16 cores available", ...
};

// The rule, as a pure function of its inputs:
//  - configured > 0 (run.threads): that many;
//  - else OMP_NUM_THREADS when the user set it (its first number, as libgomp reads "4,2");
//  - else the CPUs this process may run on (available, its affinity mask), divided among the
//    ranks on this node (local_ranks, from the MPI launcher) unless the launcher already bound
//    each rank to its share (available < node_cpus), at least 1.
// omp_num_threads: the variable's value, or null when unset.
ThreadChoice choose_cpu_threads(int configured, const char* omp_num_threads, int available, int node_cpus,
                                int local_ranks);

// choose_cpu_threads with this process's environment: OMP_NUM_THREADS, the CPUs of its affinity
// mask and of the node, and OMPI_COMM_WORLD_LOCAL_SIZE (or MPI_LOCALNRANKS).
ThreadChoice cpu_threads(int configured);

// How OpenMP waits in this process, for the start-up line: "OMP_WAIT_POLICY=PASSIVE (autonomoe's
// default)", "OMP_WAIT_POLICY=ACTIVE (from the environment)", "GOMP_SPINCOUNT=... (from the
// environment)" or "OpenMP's default wait policy".
std::string omp_wait_description();

// The marker environment variable of the re-execution below.
inline constexpr const char* kOmpReexecMarker = "AM_OMP_WAIT_REEXEC";

// libgomp reads OMP_WAIT_POLICY before main, and its default spin-waiting makes a CPU run many
// times slower when another job shares the cores. When the user has set neither OMP_WAIT_POLICY
// nor GOMP_SPINCOUNT, this re-executes the binary once (/proc/self/exe, the same argv) with
// OMP_WAIT_POLICY=PASSIVE and the marker set; call it first thing in main, before MPI_Init.
// Returns when nothing is to be done, or when the exec fails (the environment is then restored).
void reexec_with_passive_omp_wait(char** argv);

}  // namespace am

#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest):
#  1. build/ (AM_BUILD_DIR): the CPU backend, and the CUDA backend compiled by nvcc when the
#     toolkit is found. Every CPU, CLI and MPI test; the CUDA tests there run on a GPU, or report
#     themselves skipped where there is none.
#  2. build-sim/ (AM_SIM_BUILD_DIR), where the CUDA toolkit's headers are found: the same CUDA
#     backend compiled by g++ for the CPU simulator (cuda/sim/, docs/simulator.md), and the tests
#     labelled `sim`: every CUDA test under two schedules with the race check, whole-model CUDA
#     training against the CPU, and NCCL under mpirun -np 2. Set AM_SKIP_SIM=1 to skip this part.
# Extra arguments go to the first ctest (e.g. -R loader, -L fast).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build_dir=${AM_BUILD_DIR:-build}
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)" "$@")

cuda_include=""
for d in /usr/local/cuda/include ${CUDA_HOME:+$CUDA_HOME/include}; do
  [ -f "$d/cuda_runtime_api.h" ] && cuda_include=$d
done
if [ "${AM_SKIP_SIM:-0}" = 1 ] || [ -z "$cuda_include" ]; then
  echo "test: the CUDA simulator tests did not run (${AM_SKIP_SIM:+AM_SKIP_SIM=1}${cuda_include:-no CUDA toolkit headers})"
  exit 0
fi
sim_dir=${AM_SIM_BUILD_DIR:-build-sim}
AM_BUILD_DIR=$sim_dir AM_TARGETS="autonomoe autonomoe-data autonomoe_cuda_tests autonomoe-bench" \
  scripts/build.sh -DAUTONOMOE_CUDA_SIM=ON
echo "test: CUDA tests on the simulator (CPU; no GPU is involved)"
(cd "$sim_dir" && ctest --output-on-failure -j "$(nproc)" -L sim)

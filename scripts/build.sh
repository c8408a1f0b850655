#!/usr/bin/env bash
# Configures and builds autonomoe into build/ (Release). Extra arguments go to cmake's configure.
# Honours AM_BUILD_DIR (default build), AM_JOBS (default: all cores) and AM_TARGETS (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${AM_BUILD_DIR:-build}
jobs=${AM_JOBS:-$(nproc)}
if [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null 2>&1; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ $# -gt 0 ]; then
  cmake -S . -B "$build_dir" "$@"
fi
targets=()
for t in ${AM_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"

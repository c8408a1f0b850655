#!/usr/bin/env bash
# Launches a multi-process training run with mpirun (docs/distributed.md).
#   scripts/launch.sh -np N [--hostfile FILE] [--] CONFIG [autonomoe train options...]
# One node: `scripts/launch.sh -np 2 configs/tiny.yaml --set dist.ep=2 --set train.micro_batch_size=8`
# (the global batch is train.global_batch on any number of processes: docs/training.md).
# Several nodes: a hostfile ("node1 slots=8" per line) with the same paths on every node.
# Each process takes the GPU of its node-local rank; without GPUs they train on the CPU (MPI).
set -euo pipefail
cd "$(dirname "$0")/.."
np=""
hostfile=()
while [ $# -gt 0 ]; do
  case "$1" in
    -np) np=$2; shift 2 ;;
    --hostfile) hostfile=(--hostfile "$2"); shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ -n "$np" ] || { echo "launch.sh: -np N is required" >&2; exit 2; }
[ $# -ge 1 ] || { echo "usage: scripts/launch.sh -np N [--hostfile FILE] CONFIG [train options...]" >&2; exit 2; }
config=$1
shift
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
# More processes than cores on one node is fine for testing (--oversubscribe); OMP threads per
# process default to 1 under mpirun so the processes do not fight over cores.
exec mpirun -np "$np" "${hostfile[@]}" "${extra[@]}" --oversubscribe -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" \
  "${AM_BUILD_DIR:-build}/autonomoe" train --config "$config" "$@"

#!/usr/bin/env bash
# Launches a multi-process training run with mpirun (docs/distributed.md).
#   scripts/launch.sh -np N [--hostfile FILE] [--grace SECONDS] [--] CONFIG [autonomoe train options...]
# One node: `scripts/launch.sh -np 2 configs/tiny.yaml --set dist.ep=2 --set train.micro_batch_size=8`
# (the global batch is train.global_batch on any number of processes: docs/training.md).
# Several nodes: a hostfile ("node1 slots=8" per line) with the same paths on every node.
# Each process takes the GPU of its node-local rank; without GPUs they train on the CPU (MPI).
#
# Stopping: SIGINT or SIGTERM to this script is passed to every rank (as SIGUSR1, which mpirun
# forwards to all nodes: a SIGTERM to mpirun itself would be followed by SIGKILL after 1 s). The
# ranks finish their step, write a checkpoint and exit 0, and so does this script. The ranks get
# --grace seconds (default AM_STOP_GRACE_S, else 300) for that, sized for a step plus a checkpoint
# write; after it, or at a second signal, they are ended at once (SIGTERM to mpirun). A signal in
# the first AM_START_WINDOW_S seconds (default 10) after the launch is passed on when they are over,
# since ranks that have not started yet would lose it or die of it.
set -euo pipefail
early=0
trap 'early=1' INT TERM  # until stop() can pass it on (below): a signal while mpirun is being started
cd "$(dirname "$0")/.."
np=""
hostfile=()
grace=${AM_STOP_GRACE_S:-300}
start_window=${AM_START_WINDOW_S:-10}
while [ $# -gt 0 ]; do
  case "$1" in
    -np) np=$2; shift 2 ;;
    --hostfile) hostfile=(--hostfile "$2"); shift 2 ;;
    --grace) grace=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ -n "$np" ] || { echo "launch.sh: -np N is required" >&2; exit 2; }
[[ "$grace" =~ ^[0-9]+$ ]] || { echo "launch.sh: --grace (AM_STOP_GRACE_S) must be whole seconds, got '$grace'" >&2; exit 2; }
[[ "$start_window" =~ ^[0-9]+$ ]] || { echo "launch.sh: AM_START_WINDOW_S must be whole seconds, got '$start_window'" >&2; exit 2; }
[ $# -ge 1 ] || { echo "usage: scripts/launch.sh -np N [--hostfile FILE] [--grace SECONDS] CONFIG [train options...]" >&2; exit 2; }
config=$1
shift
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
# More processes than cores on one node is fine for testing (--oversubscribe). CPU threads: each
# rank takes its share of its node's cores (run.threads: 0, docs/benchmarks.md "CPU threads"), or
# OMP_NUM_THREADS when it is set here (then passed to every rank).
[ -n "${OMP_NUM_THREADS:-}" ] && extra+=(-x OMP_NUM_THREADS)
mpirun -np "$np" "${hostfile[@]}" "${extra[@]}" --oversubscribe \
  "${AM_BUILD_DIR:-build}/autonomoe" train --config "$config" "$@" &
pid=$!
started=$SECONDS
signals=0
watchdog=""
stop() {
  signals=$((signals + 1))
  if [ "$signals" -eq 1 ]; then
    # A rank catches SIGUSR1 only once its main() has started: before that mpirun has no rank to
    # forward it to (it is lost) or the rank dies of it. So a stop in the first start_window
    # seconds is forwarded when they are over (docs/distributed.md, "Stopping a multi-process job").
    local delay=$((started + start_window - SECONDS))
    if [ "$delay" -gt 0 ]; then
      echo "launch.sh: stopping in ${delay} s, once the ranks have started (AM_START_WINDOW_S=${start_window}); then every rank finishes its step and writes a checkpoint (grace ${grace} s)" >&2
    else
      echo "launch.sh: stopping: every rank finishes its step and writes a checkpoint (grace ${grace} s)" >&2
    fi
    (
      sleeper=""
      trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
      if [ "$delay" -gt 0 ]; then
        sleep "$delay" </dev/null >/dev/null 2>&1 &
        sleeper=$!
        wait "$sleeper"
      fi
      kill -USR1 "$pid" 2>/dev/null || true
      sleep "$grace" </dev/null >/dev/null 2>&1 &
      sleeper=$!
      wait "$sleeper"
      echo "launch.sh: grace of ${grace} s over: ending the ranks" >&2
      kill -TERM "$pid" 2>/dev/null
    ) &
    watchdog=$!
  else
    kill -USR1 "$pid" 2>/dev/null || true  # a second signal on a rank ends it at once
  fi
}
trap stop INT TERM
[ "$early" -eq 0 ] || stop
code=0
while :; do
  wait "$pid" && code=0 || code=$?
  kill -0 "$pid" 2>/dev/null || break  # still running: a trapped signal ended the wait early
done
if [ "$code" -gt 128 ]; then  # the status of a trapped wait, if mpirun ended meanwhile: ask again
  c=0
  wait "$pid" || c=$?
  [ "$c" -eq 127 ] || code=$c  # 127: bash no longer knows the process
fi
[ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
exit "$code"

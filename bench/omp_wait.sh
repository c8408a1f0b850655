#!/usr/bin/env bash
# Seconds per training step of configs/tiny.yaml on the CPU, 2 threads on 2 cores, under three
# OpenMP wait settings, on an idle machine and with another process keeping one of the two cores
# busy (`yes > /dev/null`), as in issue 10 point 11:
#   default  autonomoe's default: the binary re-executes itself with OMP_WAIT_POLICY=PASSIVE
#   old      libgomp's default, what autonomoe ran with before (GOMP_SPINCOUNT=300000 is exactly it)
#   active   OMP_WAIT_POLICY=ACTIVE (spin without end)
#   bench/omp_wait.sh [STEPS=20]
# Writes bench/results/<date>-omp-wait/ (or $AM_BENCH_OUT): env.txt, one log per case, results.md.
# It measures: run it on a quiet machine (other jobs on the cores distort every number).
# Uses build/ (or $AM_BUILD_DIR): autonomoe and data_tools/autonomoe-data; taskset pins the run (and the busy
# process) to cores 0 and 1 when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
build=${AM_BUILD_DIR:-build}
out=${AM_BENCH_OUT:-bench/results/$(date +%Y-%m-%d)-omp-wait}
work=$(mktemp -d "${TMPDIR:-/tmp}/omp-wait-XXXXXX")
busy_pid=""
cleanup() {
  [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$out"
pin=()
command -v taskset >/dev/null 2>&1 && pin=(taskset -c 0,1)

"$build/data_tools/autonomoe-data" synthetic --out-dir "$work/data" --name synth --vocab-size 4096 \
  --tokens $((steps * 2048 + 40000)) --val-tokens 10000 >/dev/null
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  git rev-parse --short HEAD 2>/dev/null || true
  uname -a
  nproc
  uptime
  echo "steps per case: $steps, pinned: ${pin[*]:-no (taskset missing)}"
} >"$out/env.txt"

# run CASE LOAD ENV...: one training run; prints its mean seconds per step after the first step
run() {
  local name=$1-$2
  shift 2
  env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u AM_OMP_WAIT_REEXEC "$@" "${pin[@]}" "$build/autonomoe" train \
    --config configs/tiny.yaml --set run.backend=cpu --set run.threads=2 --set "run.out_dir=$work/runs" \
    --set "run.name=$name" --set "data.train=$work/data/synth_train_*.bin" --set data.val= \
    --set "train.max_steps=$steps" --set train.warmup_steps=1 --set log.every=1 --set checkpoint.every=0 \
    >"$out/$name.log" 2>&1
  grep -o '"tokens_per_s":[0-9.e+-]*' "$work/runs/$name/metrics.jsonl" | cut -d: -f2 |
    awk 'NR > 1 { s += 2048 / $1; n++ } END { if (n) printf "%.3f", s / n; else print "n/a" }'
}

declare -A result
for load in idle busy; do
  if [ "$load" = busy ]; then
    if [ ${#pin[@]} -gt 0 ]; then taskset -c 1 yes >/dev/null & else yes >/dev/null & fi
    busy_pid=$!
  fi
  result[default-$load]=$(run default "$load")
  result[old-$load]=$(run old "$load" GOMP_SPINCOUNT=300000)
  result[active-$load]=$(run active "$load" OMP_WAIT_POLICY=ACTIVE)
  result[spin10k-$load]=$(run spin10k "$load" GOMP_SPINCOUNT=10000)
  result[spin1k-$load]=$(run spin1k "$load" GOMP_SPINCOUNT=1000)
  if [ -n "$busy_pid" ]; then
    kill "$busy_pid"
    wait "$busy_pid" 2>/dev/null || true
    busy_pid=""
  fi
done

{
  echo "# OpenMP wait policy, tiny config, CPU, 2 threads: seconds per step"
  echo
  echo "$(head -n 1 "$out/env.txt"), commit $(sed -n 2p "$out/env.txt"), $steps steps per case (mean after the first)."
  echo "busy: \`yes > /dev/null\` on one of the two cores. Logs: <case>-<load>.log; machine: env.txt."
  echo
  echo "| wait setting | idle s/step | busy s/step |"
  echo "|---|---|---|"
  echo "| autonomoe's default (OMP_WAIT_POLICY=PASSIVE) | ${result[default-idle]} | ${result[default-busy]} |"
  echo "| libgomp's default, before (GOMP_SPINCOUNT=300000) | ${result[old-idle]} | ${result[old-busy]} |"
  echo "| OMP_WAIT_POLICY=ACTIVE | ${result[active-idle]} | ${result[active-busy]} |"
  echo "| short spin, GOMP_SPINCOUNT=10000 | ${result[spin10k-idle]} | ${result[spin10k-busy]} |"
  echo "| short spin, GOMP_SPINCOUNT=1000 | ${result[spin1k-idle]} | ${result[spin1k-busy]} |"
  echo
  echo "Backend lines:"
  echo
  for f in "$out"/*-*.log; do echo "    $(basename "$f"): $(grep -o 'backend: .*' "$f" | head -n 1)"; done
} >"$out/results.md"
cat "$out/results.md"

#!/usr/bin/env bash
# On the GPU machine, one call of at most 8 minutes: the CUDA tests, the same tests under
# compute-sanitizer, the 732M benchmark table, then the same models in PyTorch. Needs .device-pack/
# from scripts/device_pack.sh (carried; its build time does not count). Logs go to $OUT as each
# stage runs, and $OUT/summary.md (stages, sanitizer tools, the benchmark table) is rewritten after
# each, so a hang or a kill loses nothing before it. Commit $OUT under bench/results/<date>-<device>/
# and quote summary.md in docs/benchmarks.md.
#   scripts/device_check.sh [tests,sanitize,bench,torch]   (default: all four, in this order)
#
# Time budget, in seconds (each figure is the stage's `timeout`, cut further to the time left; the
# whole run stops at AM_CHECK_BUDGET_S = 465 after its start, under the 480 s of 8 minutes):
#   setup: unpack the pack, env.txt                                                        10
#   (a) autonomoe_cuda_tests, every case; if one fails, no (c) or (d) (a time-out is no
#       failure: the log shows the cases that finished, and the benchmarks run)            75
#   (b) compute-sanitizer on the cases `[cuda]~[large]`: memcheck 25, racecheck 25,
#       synccheck 10, initcheck 15 (skipped at once where the tool refuses the device)      75
#   (c) autonomoe-bench, bf16, B 8 x T 2048, 2 warm-up + 10 timed steps: MoE (t2_r02) and
#       AoE d_low 64/128/256/512 (t2_r06/08/10/12), 28 each                                140
#       then, only while more than AM_TORCH_RESERVE_S = 200 would be left: the GEMM probe
#       (MoE, AoE 256: 20 each), top-p / expert-choice / null-expert variants (28 each),
#       the NCCL communicator and a world-size-1 NCCL run (nccl.log)                     (slack)
#   (d) last: bench/torch_moe.py, MoE and AoE d_low 256, eager (45 each), then torch.compile
#       (the MoE gets half the time left): all the time left, at least 150 even when every
#       stage before runs to its cap                                                     >= 150
#   summary.md after each stage, margin                                                    15
#   total                                                                                 465
# Files back in $OUT (the device tool returns at most 8): env.txt, summary.md, cuda_tests.log,
# sanitizer.log, bench.log, bench.jsonl, torch.log, nccl.log. The device tool's call:
#   command "scripts/device_check.sh", carry [".device-pack"], timeout_s 540 (480 + start-up slack).
# scripts/device_check_selftest.sh runs this script here against stand-in binaries (no GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
budget=${AM_CHECK_BUDGET_S:-465}
reserve=${AM_TORCH_RESERVE_S:-200}
what=,${1:-tests,sanitize,bench,torch},
out=${OUT:-/tmp/autonomoe-out}
work=/tmp/am-check
pack=${AM_DEVICE_PACK:-.device-pack}
mkdir -p "$out" && rm -rf "$work" && mkdir -p "$work"
stages=$work/stages.tsv san=$work/sanitizer.tsv
[ -f "$pack/bin.tar.xz" ] || { echo "device_check: $pack missing: run scripts/device_pack.sh here first and carry it" >&2; exit 1; }
mkdir -p /tmp/am-libs /tmp/am-pack && tar -C /tmp/am-libs -xJf "$pack/libs.tar.xz" && tar -C /tmp/am-pack -xJf "$pack/bin.tar.xz" ||
  { echo "device_check: could not unpack $pack" >&2; exit 1; }
nccl=$(python3 -c "import nvidia.nccl,os;print(os.path.dirname(nvidia.nccl.__file__))" 2>/dev/null || true)
# The packed libraries are for the project's binaries only (`am` runs one with them), not for
# python3 and its PyTorch; torch_moe.py reaches `autonomoe validate` through a wrapper that sets them.
ld=/tmp/am-libs/libs${nccl:+:$nccl/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
am=(env "LD_LIBRARY_PATH=$ld")
export PYTHONUNBUFFERED=1
bin=/tmp/am-pack/bin
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s/autonomoe "$@"\n' "$ld" "$bin" >"$work/autonomoe" && chmod +x "$work/autonomoe"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(head -n 1 "$pack/COMMIT")"
  sed -n '2,$p' "$pack/COMMIT" | sed 's/^/  uncommitted: /'
  echo "kernel: $(uname -r) (4.4.0 is gVisor, where compute-sanitizer and ncu were seen refusing the device)"
  echo "compute-sanitizer: ${sanitizer:-not found} $([ -n "$sanitizer" ] && "$sanitizer" --version | tail -n 1)"
  timeout 30 python3 -c "import torch; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__)" 2>&1
  timeout 20 nvidia-smi
  timeout 20 nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv
} >"$out/env.txt" 2>&1

left() { echo $((t0 + budget - $(date +%s))); }
wanted() { [[ $what == *,$1,* ]]; }
summary() {
  python3 bench/device_summary.py --jsonl "$out/bench.jsonl" --stages "$stages" --sanitizer "$san" \
    --title "device_check.sh at $(head -c 12 "$pack/COMMIT"), $(date -u +%Y-%m-%d)" >"$out/summary.md" 2>>"$out/env.txt" || true
}
# capped CAP LOG CMD...: CMD under `timeout` (CAP, cut to the time left), output appended to LOG.
# Sets cap (as used) and took (seconds); returns CMD's status (124: timed out; 125: no time left).
capped() {
  cap=$1 log=$2 took=0
  shift 2
  (($(left) < cap)) && cap=$(left)
  ((cap < 5)) && { echo "device_check: no time left for: $*" >>"$log"; return 125; }
  local s=$(date +%s) rc
  timeout -k 5 "$cap" "$@" >>"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - s))
  return $rc
}
status_of() { # exit status -> words
  case $1 in 0) echo ok ;; 124 | 137) echo "timed out" ;; 125) echo "skipped: no time left" ;; *) echo "failed (exit $1)" ;; esac
}
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$stages"; summary; }

failed=0 tests_ok=1
if wanted tests; then # (a)
  capped 75 "$out/cuda_tests.log" "${am[@]}" "$bin/autonomoe_cuda_tests" --durations yes
  rc=$?
  record "(a) CUDA tests" "$(status_of $rc)" "$took" "$cap"
  ((rc == 0)) || failed=1
  ((rc == 0 || rc == 124 || rc == 137)) || tests_ok=0 # a time-out fails nothing: the benchmarks still run
  tail -n 3 "$out/cuda_tests.log"
fi

if wanted sanitize; then # (b): per tool pass/fail, time, errors; the log keeps each tool's head and tail
  s0=$(date +%s) refused=""
  for spec in memcheck:25 racecheck:25 synccheck:10 initcheck:15; do
    tool=${spec%%:*} log=$work/san-$tool.log
    if [ -z "$sanitizer" ] || [ -n "$refused" ]; then
      printf '%s\tskipped: %s\t0\t%s\t\n' "$tool" "${refused:-compute-sanitizer not found}" "${spec##*:}" >>"$san"
      continue
    fi
    capped "${spec##*:}" "$log" "${am[@]}" "$sanitizer" --tool "$tool" --error-exitcode 86 --print-limit 20 \
      "$bin/autonomoe_cuda_tests" "[cuda]~[large]" --durations yes
    rc=$?
    errors=$(grep -o 'ERROR SUMMARY: [0-9]*' "$log" | awk '{s += $3} END {print s + 0}')
    case $rc in
      0) result=pass ;; 86) result="FAIL: errors reported" ;; 124 | 137) result="timed out (cases run so far in the log)" ;;
      125) result="skipped: no time left" ;; *) result="tests failed under the tool (exit $rc)" ;;
    esac
    if grep -q -i 'device not supported\|Unable to find injection\|not supported on this' "$log"; then
      refused="the tool refused the device (see sanitizer.log)" result=$refused
    fi
    [ -n "$refused" ] || ((rc == 0)) || failed=1
    printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$result" "$took" "$cap" "$errors" >>"$san"
    { echo "===== compute-sanitizer --tool $tool: $result, ${took} s"; head -n 1500 "$log"
      n=$(wc -l <"$log"); ((n > 1700)) && { echo "..... ($((n - 1700)) lines cut)"; tail -n 200 "$log"; }; } >>"$out/sanitizer.log"
  done
  record "(b) compute-sanitizer" "see its table" "$(($(date +%s) - s0))" 75
fi

bench() { # bench CONFIG CAP: one row of the table
  rm -f "$work/bench.json"
  capped "$2" "$out/bench.log" "${am[@]}" "$bin/autonomoe-bench" --config "configs/paper/$1.yaml" --set run.backend=cuda \
    --set train.micro_batch_size="${AM_BENCH_B:-8}" --steps "${AM_BENCH_STEPS:-10}" --warmup 2 --json "$work/bench.json"
  local rc=$?
  [ -f "$work/bench.json" ] && { tr -d '\n' <"$work/bench.json"; echo; } >>"$out/bench.jsonl"
  record "(c) autonomoe-bench $1" "$(status_of $rc)" "$took" "$cap"
  ((rc == 0)) || failed=1
}
slack() { (($(left) - $1 > reserve)); } # slack CAP: room for CAP seconds beyond the PyTorch reserve
if wanted bench && ((tests_ok)); then # (c)
  for cfg in t2_r02_moe_aux t2_r06_aoe_dlow64_aux t2_r08_aoe_dlow128_aux t2_r10_aoe_dlow256_aux t2_r12_aoe_dlow512_aux; do
    bench "$cfg" 28
  done
  # Per-expert GEMM loop vs one GEMM of the same FLOPs: what a grouped GEMM could save.
  for cfg in t2_r02_moe_aux t2_r10_aoe_dlow256_aux; do
    slack 20 || break
    capped 20 "$out/bench.log" "${am[@]}" "$bin/autonomoe-gemm-probe" --config "configs/paper/$cfg.yaml" --set run.backend=cuda \
      --set train.micro_batch_size="${AM_BENCH_B:-8}"
    rc=$?
    record "(c) gemm probe $cfg" "$(status_of $rc)" "$took" "$cap"
  done
  for cfg in t3_moe_topp t3_aoe_topp t3_moe_expert_choice t3_aoe_expert_choice null_moe null_aoe; do
    slack 28 || break
    bench "$cfg" 28
  done
  # One GPU, NCCL: the collectives through the run's communicator, then a world-size-1 NCCL run.
  if slack 45; then
    capped 20 "$out/nccl.log" "${am[@]}" "$bin/autonomoe-comm-bench" --config configs/paper/t2_r10_aoe_dlow256_aux.yaml \
      --set run.backend=cuda --set dist.comm=nccl --set train.micro_batch_size="${AM_BENCH_B:-8}"
    record "(c) NCCL comm-bench" "$(status_of $?)" "$took" "$cap"
    capped 25 "$out/nccl.log" "${am[@]}" bash -c "'$bin/autonomoe-data' synthetic --out-dir $work/synth --vocab-size 4096 \
      --tokens 400000 && '$bin/autonomoe' train --config configs/tiny.yaml --set run.backend=cuda --set dist.comm=nccl \
      --set 'data.train=$work/synth/synth_train_*.bin' --set 'data.val=$work/synth/synth_val_*.bin' \
      --set train.max_steps=30 --set log.every=10 --set run.out_dir=$work/runs"
    record "(c) NCCL world-size-1 run" "$(status_of $?)" "$took" "$cap"
  fi
  cat "$out/bench.log" | grep -v '^\[' | tail -n 20
fi

if wanted torch && ((tests_ok)); then # (d) last: whatever time is left
  # Eager first for both models (short), so that a slow compile loses only its own row; then
  # torch.compile, the MoE with half the time left (the AoE run reuses Inductor's cache).
  for mode in eager compile; do
    for cfg in t2_r02_moe_aux t2_r10_aoe_dlow256_aux; do
      t=$(($(left) - 10))
      if [ $mode = eager ]; then ((t > 45)) && t=45; elif [ $cfg = t2_r02_moe_aux ]; then t=$((t / 2)); fi
      capped "$t" "$out/torch.log" python3 bench/torch_moe.py --config "configs/paper/$cfg.yaml" \
        --autonomoe "$work/autonomoe" --set train.micro_batch_size="${AM_BENCH_B:-8}" --modes $mode --warmup 3 \
        --steps "${AM_BENCH_STEPS:-10}" --json "$out/bench.jsonl"
      rc=$?
      record "(d) PyTorch $mode $cfg" "$(status_of $rc)" "$took" "$cap"
      ((rc == 0)) || failed=1
    done
  done
  grep -v '^\(eager\|compile\) step' "$out/torch.log" | tail -n 12
fi
((tests_ok)) || { echo "device_check: the CUDA tests failed (cuda_tests.log): no benchmarks were run"
  record "(c), (d) benchmarks" "skipped: the CUDA tests failed" 0 0; }
echo "device_check: $(($(date +%s) - t0)) s of $budget; summary.md:"
cat "$out/summary.md"
exit $failed

#!/usr/bin/env bash
# Runs scripts/device_check.sh here, without a GPU, against stand-in binaries (a fake pack in a
# temporary folder, and compute-sanitizer, nvidia-smi and torch_moe.py stand-ins first on PATH),
# and checks its control flow: all stages and 8 files on a good run; no benchmarks when the CUDA
# tests fail; the later sanitizer tools skipped when the tool refuses the device; a hanging stage
# cut at the time budget. About 40 s, little CPU.   scripts/device_check_selftest.sh
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/am-devcheck-selftest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/path" "$tmp/pack" "$tmp/libs/libs"
stub() { printf '#!/bin/bash\n%s\n' "$2" >"$1" && chmod +x "$1"; }
stub "$tmp/bin/autonomoe_cuda_tests" 'echo "tests $*"; exit ${FAKE_TEST_RC:-0}'
stub "$tmp/bin/autonomoe-bench" 'sleep ${FAKE_BENCH_SLEEP:-0}; tps=160000; [[ $2 == *aoe* ]] && tps=150000
printf "{\n \"config\": \"%s\", \"micro_batch\": 8, \"seq_len\": 2048, \"tokens_per_s\": %s, \"mfu\": 0.24,
 \"peak_memory_bytes\": 3e10, \"median_step_ms\": 100.0, \"flops_per_token\": 1449902592, \"peak_tflops\": 989\n}\n" "$2" $tps >"${@: -1}"'
for b in autonomoe autonomoe-gemm-probe autonomoe-comm-bench autonomoe-data; do stub "$tmp/bin/$b" 'echo "$0 $*"'; done
stub "$tmp/path/compute-sanitizer" '[ "$1" = --version ] && exit 0
[ -n "${FAKE_SAN_REFUSE:-}" ] && { echo "========= Error: Device not supported"; exit 1; }
echo "========= ERROR SUMMARY: 0 errors"'
stub "$tmp/path/nvidia-smi" 'echo "stand-in nvidia-smi"'
stub "$tmp/path/python3" 'if [[ "$*" == *torch_moe.py* ]]; then sleep ${FAKE_TORCH_SLEEP:-0}
  mode=eager; [[ "$*" == *"--modes compile"* ]] && mode=torch.compile
  echo "{\"impl\": \"pytorch\", \"mode\": \"$mode\", \"config\": \"$3\", \"micro_batch\": 8, \"seq_len\": 2048, \"tokens_per_s\": 1e5, \"mfu\": 0.15, \"peak_memory_bytes\": 4e10, \"median_step_ms\": 163.8, \"flops_per_token\": 1449902592, \"peak_tflops\": 989, \"first_step_s\": 2.0, \"compile_s\": 0.5}" >>"${@: -1}"; exit 0; fi
exec '"$(command -v python3)"' "$@"'
tar -C "$tmp" -cJf "$tmp/pack/bin.tar.xz" bin && tar -C "$tmp/libs" -cJf "$tmp/pack/libs.tar.xz" libs
echo selftest >"$tmp/pack/COMMIT"

fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAILED: $1 ($2)"; fails=$((fails + 1)); fi; }
run() { # run NAME [VAR=value]...: one device_check.sh run into $tmp/NAME
  local name=$1
  shift
  mkdir -p "$tmp/$name"
  env "$@" PATH="$tmp/path:$PATH" OUT="$tmp/$name" AM_DEVICE_PACK="$tmp/pack" bash scripts/device_check.sh >"$tmp/$name.txt" 2>&1
  echo $? >"$tmp/$name.rc"
}
rc() { cat "$tmp/$1.rc"; }
rows() { grep -c "$2" "$tmp/$1/summary.md"; }

run good
check "a good run exits 0" '[ "$(rc good)" = 0 ]'
check "a good run returns 8 files" '[ "$(ls "$tmp/good" | wc -l)" = 8 ]'
check "the table has 11 autonomoe rows and 4 PyTorch rows" '[ "$(rows good "| autonomoe |")" = 11 ] && [ "$(rows good "| PyTorch, eager |")" = 2 ] && [ "$(rows good "| PyTorch, torch.compile |")" = 2 ]'
check "AoE d_low 256 relative to MoE and to PyTorch" 'grep -q "^| t2_r10_aoe_dlow256_aux | autonomoe | 150000 .* | 0.94 |" "$tmp/good/summary.md" && grep -q "^| t2_r10_aoe_dlow256_aux | PyTorch, eager .* | 1.50 |" "$tmp/good/summary.md"'
check "four sanitizer tools passed" '[ "$(rows good "| pass |")" = 4 ]'

run tests_fail FAKE_TEST_RC=1
check "failing CUDA tests: exit 1, no benchmarks" '[ "$(rc tests_fail)" = 1 ] && [ ! -e "$tmp/tests_fail/bench.jsonl" ] && grep -q "skipped: the CUDA tests failed" "$tmp/tests_fail/summary.md"'

run refused FAKE_SAN_REFUSE=1
check "a refused device: the later tools skipped, not failures" '[ "$(rows refused "skipped: the tool refused the device")" = 3 ]'

s=$(date +%s)
run hang FAKE_TORCH_SLEEP=100 AM_CHECK_BUDGET_S=40 AM_TORCH_RESERVE_S=10
took=$(($(date +%s) - s))
check "a hanging PyTorch stage is cut at the budget (took ${took} s of 40)" '((took <= 50)) && grep -q "(d) PyTorch eager t2_r02_moe_aux | timed out" "$tmp/hang/summary.md"'
check "... and the benchmark table before it is kept" '[ "$(rows hang "| autonomoe |")" -ge 5 ]'
((fails == 0)) && echo "device_check selftest: all passed" || { echo "device_check selftest: $fails failed"; exit 1; }

#!/usr/bin/env bash
# Line coverage of cuda/ under the simulator (gcov): builds build-cov (the simulator build with
# --coverage on cuda/*.cu), runs the CUDA tests, the whole-model training parity and the NCCL
# parity on it, and prints per file the share of lines executed and the lines never reached.
# Not run in CI (a third build); docs/testing.md quotes its output.
#   scripts/sim_coverage.sh [OUT_FILE] [--report-only]   (--report-only: the last run's counts)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/dev/stdout}
dir=build-cov
if [ "${2:-}" != --report-only ]; then
  AM_BUILD_DIR=$dir AM_TARGETS="autonomoe autonomoe-data autonomoe_cuda_tests" \
    scripts/build.sh -DAUTONOMOE_CUDA_SIM=ON -DAUTONOMOE_SIM_COVERAGE=ON >/dev/null
  find "$dir" -name '*.gcda' -delete
  OMP_NUM_THREADS=1 "$dir/tests/autonomoe_cuda_tests" --sim-schedule=asc >/dev/null 2>&1
  OMP_NUM_THREADS=1 tests/sim/train_parity.sh "$dir" . "$dir/cov_work/train" >/dev/null
  OMP_NUM_THREADS=1 tests/sim/nccl_parity.sh "$dir" . "$dir/cov_work/nccl" >/dev/null
fi
objdir=$PWD/$dir/CMakeFiles/autonomoe_core.dir/cuda
work=$(mktemp -d)
(cd "$work" && gcov --json-format -o "$objdir" "$objdir"/*.gcda >/dev/null 2>&1) || true
# Per source line: reached when any instantiation of its function, in any file that includes it,
# reached it.
{
  echo "| file | lines executed | lines never reached |"
  echo "| --- | --- | --- |"
  for f in "$work"/*.gcov.json.gz; do zcat "$f"; done | jq -s -r --arg root "$PWD/" '
    [.[].files[] | select(.file | test("/cuda/[^/]+$")) | .file as $f | .lines[] | {f: $f, l: .line_number, c: .count}]
    | group_by(.f)[] | .[0].f as $file
    | (group_by(.l) | map({l: .[0].l, c: (map(.c) | max)})) as $ls
    | ($ls | map(select(.c == 0) | .l)) as $miss
    | "| \($file | ltrimstr($root)) | \(($ls | length) - ($miss | length)) of \($ls | length) (\(((($ls | length) - ($miss | length)) * 1000 / ($ls | length) | floor) / 10)%) | \(if ($miss | length) == 0 then "none" else ($miss | map(tostring) | join(", ")) end) |"'
} >"$out"
rm -rf "$work"

#!/usr/bin/env bash
# Do the simulator's checks catch real bugs in the real kernels? Puts one bug at a time into a
# kernel by hand (sed), rebuilds the simulator's CUDA tests, runs the tests of that kernel, and
# expects them to FAIL with the named check; then restores the file. Not part of CI (each case
# rebuilds); its output is quoted in docs/testing.md.
#   tests/sim/mutations.sh [BUILD_SIM_DIR]   (default build-sim, configured by scripts/test.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-sim}
tests=$build/tests/autonomoe_cuda_tests
run_args=(--sim-schedule=asc --sim-racecheck=desc)
status=0

mutate() {  # name file sed-expression test-pattern expected-text
  local name=$1 file=$2 expr=$3 pattern=$4 expect=$5
  cp "$file" "$file.orig"
  sed -i "$expr" "$file"
  if cmp -s "$file" "$file.orig"; then
    echo "$name: the mutation did not apply to $file"; status=1; mv "$file.orig" "$file"; return
  fi
  if ! ninja -C "$build" autonomoe_cuda_tests >/tmp/mutation_build.log 2>&1; then
    echo "$name: does not compile"; status=1; mv "$file.orig" "$file"; return
  fi
  local out
  out=$("$tests" "${run_args[@]}" "$pattern" 2>&1)
  local rc=$?
  mv "$file.orig" "$file"
  touch "$file"
  local line
  line=$(grep -m1 -oE "($expect).*" <<<"$out" | cut -c1-220)
  if [ $rc -ne 0 ] && [ -n "$line" ]; then
    echo "$name: caught ($pattern fails): $line"
  else
    echo "$name: NOT caught (exit $rc)"; status=1
  fi
}

mutate "off-by-one index (elementwise.cu add_kernel: i <= n)" cuda/elementwise.cu \
  '11s/i < n; i += int64_t(gridDim.x)/i <= n; i += int64_t(gridDim.x)/' "cuda element-wise*" "out of bounds"
mutate "missing __syncthreads (elementwise.cu sum_squares_kernel reduction loop)" cuda/elementwise.cu \
  '40s/__syncthreads();//' "cuda element-wise*" "a race|is not deterministic"
mutate "missing __syncwarp (select.cu top-p: lane 0's writes of ex[])" cuda/select.cu \
  '138s/__syncwarp();//' "cuda topp_select*" "a race|is not deterministic"
mutate "wrong shuffle lane (moe_common.cuh warp_sum: lane ^ (off >> 1))" cuda/moe_common.cuh \
  '56s/__shfl_xor_sync(kFullMask, v, off)/__shfl_xor_sync(kFullMask, v, off >> 1)/' "cuda block_norms*" "FAILED"
ninja -C "$build" autonomoe_cuda_tests >/dev/null 2>&1
exit $status

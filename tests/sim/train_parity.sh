#!/usr/bin/env bash
# Whole-model CUDA training on the simulator, through the real binary, against the CPU backend:
# 20 steps of a 2-layer, d_model 32, sequence 32 MoE for the router, AoE (factorized experts,
# activation-norm scores) and AoE with top-p, each in fp32 and bf16. Each CUDA run must pass the
# start-up backend check and its per-step losses must match the CPU run's (relative tolerance
# 2e-3 in fp32 and 1e-2 in bf16, the tolerances of tests/cuda/test_cuda_model.cpp).
#   train_parity.sh BUILD_SIM_DIR SOURCE_DIR WORK
set -euo pipefail
build=$1
src=$2
work=$3
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
sim_setup "$build" "$work"

common=(--config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$work/runs"
  --set "data.train=$work/data/synth_train_*.bin" --set "data.val=$work/data/synth_val_*.bin"
  --set model.d_model=32 --set model.max_seq_len=32 --set data.seq_len=32 --set model.moe.d_ffn=64
  --set train.max_steps=20 --set checkpoint.every=0 --set log.every=1 --set eval.every=0)
declare -A strategy=(
  [router]=""
  [aoe]="--set model.moe.expert.type=factorized --set model.moe.expert.d_low=8 --set model.moe.scorer.type=act_norm"
  [aoe_topp]="--set model.moe.expert.type=factorized --set model.moe.expert.d_low=8 --set model.moe.scorer.type=act_norm --set model.moe.selector.type=topp --set model.moe.selector.p=0.6"
)

status=0
for name in router aoe aoe_topp; do
  for precision in fp32 bf16; do
    tol=2e-3
    [ "$precision" = bf16 ] && tol=1e-2
    run="$name-$precision"
    # shellcheck disable=SC2086
    "$build/autonomoe" train "${common[@]}" ${strategy[$name]} --set run.precision=$precision \
      --set run.backend=cpu --set "run.name=$run-cpu" >"$work/$run-cpu.log" 2>&1
    # shellcheck disable=SC2086
    "$build/autonomoe" train "${common[@]}" ${strategy[$name]} --set run.precision=$precision \
      --set run.backend=cuda --set "run.name=$run-cuda" >"$work/$run-cuda.log" 2>&1
    grep -q "backend: cuda, device 0 (autonomoe CUDA simulator" "$work/$run-cuda.log"
    check=$(grep -o "backend check: cuda agrees with the CPU reference.*" "$work/$run-cuda.log")
    result=$(compare_losses "$work/runs/$run-cpu" "$work/runs/$run-cuda" "$tol" 20)
    echo "$run: $result; $check"
    case "$result" in *FAILED*) status=1 ;; esac
  done
done
exit $status

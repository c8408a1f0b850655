#!/usr/bin/env bash
# Per-step device counts (launches, host synchronisations by kind, copies, peak device memory)
# of the CUDA backend, counted by the simulator: the tiny config, and the 732M paper configs'
# layer shapes (MoE, and AoE d_low 256) at sequence length 64 and micro-batch 2, with 1 and 2
# layers (a step's counts grow by the same amount per layer: the 12-layer figure is 1-layer +
# 11 x the difference). Not run in CI; its output is committed (bench/results/) and quoted in
# docs/benchmarks.md.
#   scripts/sim_counts.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
mkdir -p "$out"
build=${AM_SIM_BUILD_DIR:-build-sim}
AM_BUILD_DIR=$build AM_TARGETS="autonomoe-bench" scripts/build.sh -DAUTONOMOE_CUDA_SIM=ON >/dev/null
bench=$build/bench/autonomoe-bench
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD)$(git diff --quiet || echo ' (with local changes)')"
  echo "host: $(nproc) cores, $(uname -sr)"
} >"$out/env.txt"
run() {  # name config extra-sets...
  local name=$1 config=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  OMP_NUM_THREADS=2 "$bench" --config "$config" --set run.backend=cuda "${sets[@]}" --steps 1 --warmup 1 \
    --json "$out/$name.json" >"$out/$name.log" 2>&1
  echo "$name: $(grep 'per step' "$out/$name.log")"
}
run tiny_moe configs/tiny/moe.yaml
run tiny_aoe_dlow16 configs/tiny/aoe_dlow16.yaml
for cfg in t2_r01_moe t2_r09_aoe_dlow256; do
  for layers in 1 2; do
    run "${cfg}_L$layers" "configs/paper/$cfg.yaml" model.n_layers=$layers data.seq_len=64 \
      model.max_seq_len=64 train.micro_batch_size=2 run.precision=bf16
  done
done

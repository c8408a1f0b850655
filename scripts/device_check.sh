#!/usr/bin/env bash
# On the GPU machine, one call: every CUDA test, then the benchmark table of the paper's 732M
# configs, with logs in $OUT (at most 8 files come back). Needs .device-pack/ from
# scripts/device_pack.sh (carried). Commit the logs under bench/results/<date>-<device>/ and quote
# them in docs/benchmarks.md.
#   scripts/device_check.sh [tests|bench|nccl|all]   (default all)
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
out=${OUT:-/tmp/autonomoe-out}
mkdir -p "$out"
pack=.device-pack
[ -f "$pack/bin.tar.xz" ] || { echo "device_check: $pack missing: run scripts/device_pack.sh here first and carry it" >&2; exit 1; }
mkdir -p /tmp/am-libs /tmp/am-pack && tar -C /tmp/am-libs -xJf "$pack/libs.tar.xz" && tar -C /tmp/am-pack -xJf "$pack/bin.tar.xz"
nccl=$(python3 -c "import nvidia.nccl,os;print(os.path.dirname(nvidia.nccl.__file__))" 2>/dev/null || true)
export LD_LIBRARY_PATH=/tmp/am-libs/libs${nccl:+:$nccl/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bin=/tmp/am-pack/bin

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(head -n 1 "$pack/COMMIT")"
  sed -n '2,$p' "$pack/COMMIT" | sed 's/^/  uncommitted: /'
  nvidia-smi
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv
} >"$out/env.txt" 2>&1

status=0
if [ "$what" = all ] || [ "$what" = tests ]; then
  "$bin/autonomoe_cuda_tests" --durations yes >"$out/cuda_tests.log" 2>&1 || status=1
  tail -n 3 "$out/cuda_tests.log"
fi
if [ "$what" = all ] || [ "$what" = bench ]; then
  : >"$out/bench.log"
  : >"$out/bench.jsonl"
  # AoE Table 4's layout (MoE, then AoE d_low 64..512), then the top-p, expert-choice and
  # null-expert variants of both. The paper configs run bf16 (fp32 master weights).
  for cfg in t2_r02_moe_aux t2_r06_aoe_dlow64_aux t2_r08_aoe_dlow128_aux t2_r10_aoe_dlow256_aux \
             t2_r12_aoe_dlow512_aux t3_moe_topp t3_aoe_topp t3_moe_expert_choice t3_aoe_expert_choice \
             null_moe null_aoe; do
    "$bin/autonomoe-bench" --config "configs/paper/$cfg.yaml" --set run.backend=cuda \
      --set train.micro_batch_size="${AM_BENCH_B:-8}" --steps "${AM_BENCH_STEPS:-10}" --warmup 2 \
      --json /tmp/bench.json >>"$out/bench.log" 2>&1 && cat /tmp/bench.json | tr -d '\n' >>"$out/bench.jsonl" \
      && echo >>"$out/bench.jsonl" || status=1
  done
  # Per-expert GEMM loop vs one GEMM of the same FLOPs: what a grouped GEMM could save.
  for cfg in t2_r02_moe_aux t2_r10_aoe_dlow256_aux; do
    "$bin/autonomoe-gemm-probe" --config "configs/paper/$cfg.yaml" --set run.backend=cuda \
      --set train.micro_batch_size="${AM_BENCH_B:-8}" >>"$out/bench.log" 2>&1 || status=1
  done
  cat "$out/bench.log"
fi
if [ "$what" = all ] || [ "$what" = nccl ]; then
  # One GPU, NCCL: the collectives timed through the run's communicator, then a world-size-1 NCCL
  # training run end to end (its log states the communication time per interval).
  : >"$out/nccl.log"
  for cfg in configs/paper/t2_r02_moe_aux.yaml configs/paper/t2_r10_aoe_dlow256_aux.yaml; do
    "$bin/autonomoe-comm-bench" --config "$cfg" --set run.backend=cuda --set dist.comm=nccl \
      --set train.micro_batch_size="${AM_BENCH_B:-8}" >>"$out/nccl.log" 2>&1 || status=1
  done
  "$bin/autonomoe-data" synthetic --out-dir /tmp/am-synth --vocab-size 4096 --tokens 400000 >>"$out/nccl.log" 2>&1 || status=1
  "$bin/autonomoe" train --config configs/tiny.yaml --set run.backend=cuda --set dist.comm=nccl \
    --set "data.train=/tmp/am-synth/synth_train_*.bin" --set "data.val=/tmp/am-synth/synth_val_*.bin" \
    --set train.max_steps=30 --set log.every=10 --set run.out_dir=/tmp/am-runs >>"$out/nccl.log" 2>&1 || status=1
  tail -n 25 "$out/nccl.log"
fi
exit $status

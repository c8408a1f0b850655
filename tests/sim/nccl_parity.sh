#!/usr/bin/env bash
# cuda/nccl_comm.cu on the simulator (its NCCL calls run over MPI, cuda/sim/nccl.cpp): `mpirun -np
# 2` training with run.backend cuda and dist.comm nccl must match the same job on the CPU backend
# with dist.comm mpi, step by step (relative 2e-3): data parallel (gradient all-reduce on NCCL's
# own stream), expert parallel ep 2 (token all-to-all by send/recv groups), ZeRO-1 (parameter
# all-gather by broadcasts) and ep 2 with the balancing statistics summed over the ranks
# (model.moe.aux.balance_scope data_parallel).
#   nccl_parity.sh BUILD_SIM_DIR SOURCE_DIR WORK
set -euo pipefail
build=$1
src=$2
work=$3
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
sim_setup "$build" "$work"
common=(--config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$work/runs"
  --set "data.train=$work/data/synth_train_*.bin" --set "data.val=$work/data/synth_val_*.bin"
  --set train.max_steps=10 --set checkpoint.every=0 --set log.every=1 --set eval.every=0
  --set train.global_batch=8)   # 2 ranks x micro-batch 4
mpi=(mpirun --oversubscribe --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1 -x AM_SIM_STREAMS=${AM_SIM_STREAMS:-eager})

status=0
for layout in "dp:--set dist.ep=1" "ep2:--set dist.ep=2" "zero1:--set dist.zero=1" \
  "ep2-balance-dp:--set dist.ep=2 --set model.moe.aux.balance_scope=data_parallel"; do
  name=${layout%%:*}
  # shellcheck disable=SC2206
  extra=(${layout#*:})
  "${mpi[@]}" "$build/autonomoe" train "${common[@]}" "${extra[@]}" --set run.backend=cpu --set dist.comm=mpi \
    --set "run.name=$name-mpi" >"$work/$name-mpi.log" 2>&1
  "${mpi[@]}" "$build/autonomoe" train "${common[@]}" "${extra[@]}" --set run.backend=cuda --set dist.comm=nccl \
    --set "run.name=$name-nccl" >"$work/$name-nccl.log" 2>&1
  grep -q "processes: 2 (nccl communication)" "$work/$name-nccl.log"
  result=$(compare_losses "$work/runs/$name-mpi" "$work/runs/$name-nccl" 2e-3 10)
  echo "$name (cuda + nccl on the simulator vs cpu + mpi, 2 ranks): $result"
  case "$result" in *FAILED*) status=1 ;; esac
done
exit $status

#!/usr/bin/env bash
# SIGTERM to scripts/launch.sh (mpirun -np 2) during a step that takes longer than the 1 s mpirun
# itself gives its ranks before SIGKILL: every rank finishes the step, one checkpoint is written,
# rank 0 alone says so, launch.sh exits 0, and the run resumes from that checkpoint.
#   launch_sigterm.sh BUILD_DIR SOURCE_DIR WORK
set -u
build=$1
src=$2
work=$3
out=$work/launch_sigterm
rm -rf "$out"
mkdir -p "$out"
# A step of a few seconds on a CPU: a global batch of 1024 sequences of 16 tokens (64 micro-batches
# of 8 per rank), d_model 128.
common=(--set "run.out_dir=$out" --set run.name=slow --set "data.train=$work/data/synth_train_*.bin"
        --set data.val= --set dist.ep=2 --set model.d_model=128 --set model.moe.d_ffn=512
        --set train.micro_batch_size=8 --set train.global_batch=1024 --set log.every=1 --set checkpoint.every=0)
export AM_BUILD_DIR=$build
"$src/scripts/launch.sh" -np 2 --grace 120 "$src/tests/data/cli/small.yaml" "${common[@]}" \
  --set train.max_steps=1000 >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do  # wait (at most 120 s) for the first step
  grep -q "step .* 1/1000" "$out/log" 2>/dev/null && break
  sleep 0.1
done
# now inside step 2
t0=$(date +%s%N)
kill -TERM "$pid"
wait "$pid"
code=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
tail -n 6 "$out/log"
echo "launch.sh exited $code, $ms ms after SIGTERM"
[ "$code" -eq 0 ] || { echo "FAIL: exit code $code after SIGTERM, expected 0"; exit 1; }
[ "$ms" -gt 1000 ] || { echo "FAIL: the step took under 1 s: this tests nothing (raise train.global_batch)"; exit 1; }
n=$(grep -c "interrupted at step .*: checkpoint written to" "$out/log")
[ "$n" -eq 1 ] || { echo "FAIL: $n 'checkpoint written' lines, expected 1 (rank 0's)"; exit 1; }
ckpt=$(ls -d "$out"/slow/checkpoints/step_* 2>/dev/null | tail -n 1)
[ -n "$ckpt" ] && [ -f "$ckpt/manifest.json" ] || { echo "FAIL: no complete checkpoint"; exit 1; }
grep -q "checkpoint written to $ckpt" "$out/log" || { echo "FAIL: the message names another checkpoint than $ckpt"; exit 1; }
step=$((10#${ckpt##*step_}))
echo "interrupted at step $step; resuming for 1 more step"
"$src/scripts/launch.sh" -np 2 "$src/tests/data/cli/small.yaml" "${common[@]}" \
  --set "train.max_steps=$((step + 1))" --resume --allow-schedule-change >"$out/resume.log" 2>&1
code=$?
tail -n 3 "$out/resume.log"
[ "$code" -eq 0 ] || { echo "FAIL: resume exit code $code"; exit 1; }
grep -q "steps $step -> $((step + 1))" "$out/resume.log" || { echo "FAIL: resume did not continue from step $step"; exit 1; }
echo PASS

#!/usr/bin/env bash
# SIGINT or SIGTERM during training: the step finishes, a checkpoint is written, the process
# prints how to resume and exits 0; resuming continues from that step.
#   sigint.sh AUTONOMOE SOURCE_DIR WORK [SIGNAL=INT]
set -u
bin=$1
src=$2
work=$3
sig=${4:-INT}
out=$work/sig$sig
rm -rf "$out"
mkdir -p "$out"
common=(--config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$out" --set run.name=interrupted
        --set "data.train=$work/data/synth_train_*.bin" --set "data.val=$work/data/synth_val_*.bin")
"$bin" train "${common[@]}" --set train.max_steps=1000000 --set log.every=1 >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do   # wait (at most 20 s) until a few steps have run
  grep -q "step .* 3/1000000" "$out/log" 2>/dev/null && break
  sleep 0.1
done
kill -"$sig" "$pid"
wait "$pid"
code=$?
cat "$out/log" | tail -n 8
[ "$code" -eq 0 ] || { echo "FAIL: exit code $code after SIG$sig, expected 0"; exit 1; }
grep -q "resume with: autonomoe train" "$out/log" || { echo "FAIL: no resume hint"; exit 1; }
ckpt=$(ls -d "$out"/interrupted/checkpoints/step_* 2>/dev/null | tail -n 1)
[ -n "$ckpt" ] && [ -f "$ckpt/manifest.json" ] || { echo "FAIL: no complete checkpoint"; exit 1; }
step=$((10#${ckpt##*step_}))
echo "interrupted at step $step; resuming for 2 more steps"
# a shorter max_steps changes the schedule: refused without --allow-schedule-change (docs/training.md)
"$bin" train "${common[@]}" --set "train.max_steps=$((step + 2))" --resume >"$out/refused.log" 2>&1
code=$?
[ "$code" -eq 1 ] && grep -q "train.max_steps: checkpoint 1000000, config $((step + 2))" "$out/refused.log" ||
  { echo "FAIL: a resume with another max_steps was not refused (exit code $code)"; cat "$out/refused.log"; exit 1; }
"$bin" train "${common[@]}" --set "train.max_steps=$((step + 2))" --resume --allow-schedule-change \
  >"$out/resume.log" 2>&1
code=$?
tail -n 4 "$out/resume.log"
[ "$code" -eq 0 ] || { echo "FAIL: resume exit code $code"; exit 1; }
grep -q "steps $step -> $((step + 2))" "$out/resume.log" || { echo "FAIL: resume did not continue from step $step"; exit 1; }
echo PASS

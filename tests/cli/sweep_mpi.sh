#!/usr/bin/env bash
# A d_low sweep under `mpirun -np 2` (every point on both ranks, rank 0 alone writes the results),
# then resumed under mpirun after damage that stands for an interruption: point 2 lost its last
# checkpoint and summary.json (it resumes from step 3, and must end bit for bit where it did),
# point 3 lost its run directory (it runs again); points 1 and 4 are complete (skipped).
#   sweep_mpi.sh AUTONOMOE SOURCE_DIR WORK
set -u
bin=$1
src=$2
work=$3
out=$work/sweep_mpi
rm -rf "$out"
mkdir -p "$out"
sweep=(sweep "$src/configs/sweeps/tiny_dlow.yaml" --set "run.out_dir=$out" --set train.micro_batch_size=4
       --set train.max_steps=6 --set checkpoint.every=3 --set log.every=3 --set run.threads=1
       --set "data.train=$work/data/synth_train_*.bin" --set "data.val=$work/data/synth_val_*.bin")
mpi=(mpirun --oversubscribe --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1)
fail() { echo "FAIL: $*"; exit 1; }
csv=$out/tiny_dlow/results.csv
rows() { tail -n +2 "$csv" | sed 's/"[^"]*"/Q/g'; }   # quoted fields (ids, run dirs) hold commas
# the status column of each row, in sweep order
statuses() { rows | awk -F, '{print $(NF-1)}' | tr '\n' ' '; }
# the final train loss (column 4: point, the two varied keys, then final_train_loss) of row $1
loss() { rows | sed -n "${1}p" | cut -d, -f4; }

"${mpi[@]}" "$bin" "${sweep[@]}" >"$out/log1" 2>&1
code=$?
tail -n 12 "$out/log1"
[ "$code" -eq 0 ] || fail "first sweep exited $code"
grep -q "global batch 8 sequences = micro-batch 4 x accumulation 1 x data-parallel size 2" "$out/log1" ||
  fail "no start-up line with the global batch over 2 ranks"
[ "$(grep -c '^| load_balance' "$out/log1")" -eq 4 ] || fail "the results table was not printed exactly once (4 rows)"
[ "$(statuses)" = "done done done done " ] || fail "statuses after the first sweep: $(statuses)"
for i in 1 2 3 4; do [ -n "$(loss $i)" ] || fail "row $i has no final train loss"; done
[ -z "$(ls "$out"/tiny_dlow/*.tmp* 2>/dev/null)" ] || fail "temporary files left behind"
loss2=$(loss 2)
loss3=$(loss 3)

# the damage of an interruption, then the same command again
p2="$out/tiny_dlow/load_balance=0,d_low=16"
p3="$out/tiny_dlow/load_balance=0.01,d_low=8"
[ -d "$p2/checkpoints/step_00000006" ] || fail "point 2 has no step-6 checkpoint"
rm -rf "$p2/checkpoints/step_00000006" "$p2/summary.json" "$p3"
"${mpi[@]}" "$bin" "${sweep[@]}" >"$out/log2" 2>&1
code=$?
tail -n 12 "$out/log2"
[ "$code" -eq 0 ] || fail "resumed sweep exited $code"
grep -q "point 2/4 .*resume from its checkpoint at step 3" "$out/log2" || fail "point 2 was not resumed from step 3"
[ "$(statuses)" = "skipped-done done done skipped-done " ] || fail "statuses after the resumed sweep: $(statuses)"
[ "$(loss 2)" = "$loss2" ] || fail "resumed point 2 ended at loss $(loss 2), the uninterrupted sweep at $loss2"
[ "$(loss 3)" = "$loss3" ] || fail "point 3 run again ended at loss $(loss 3), the first time at $loss3"
echo "PASS: 2-rank sweep complete; resumed under mpirun (point 2 loss $loss2 both times)"

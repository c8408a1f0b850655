#!/usr/bin/env bash
# TensorBoard event files and MFU in the training log (issue 12 points 3 and 5), on the CPU:
#   1. a fresh run of tests/data/cli/small.yaml (6 steps, a record every step, validation every 2):
#      its log and metrics.jsonl have no MFU (the CPU has no peak unless run.peak_tflops is set);
#      tests/tensorboard_check.py decodes its one event file and finds metrics.jsonl's values;
#   2. resumed from its step-3 checkpoint with run.peak_tflops set: the log states the peak once
#      and shows MFU on each step line, metrics.jsonl has "mfu" after step 3, and the two event
#      files (the first cut back to step 3) again equal metrics.jsonl, train/mfu included;
#   3. log.tensorboard: false writes no tensorboard/ folder.
#   tensorboard.sh BUILD_DIR SOURCE_DIR WORK   (WORK: the CLI fixture's, with its data/)
set -euo pipefail
build=$1
src=$2
work=$3/tb
rm -rf "$work"
mkdir -p "$work"
train=("$build/autonomoe" train --config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$work"
       --set "data.train=$3/data/synth_train_*.bin" --set "data.val=$3/data/synth_val_*.bin"
       --set log.every=1 --set eval.every=2)
run=$work/small
fail() { echo "FAIL: $*"; exit 1; }
py=/usr/bin/python3  # Debian's, with python3-protobuf (scripts/setup.sh); another python3 may lack it
[ -x "$py" ] || py=python3

"${train[@]}" >"$work/fresh.log" 2>&1 || { cat "$work/fresh.log"; fail "the fresh run failed"; }
cat "$work/fresh.log"
grep -q "summary: steps 0 -> 6" "$work/fresh.log" || fail "the fresh run did not train 6 steps"
! grep -q MFU "$work/fresh.log" || fail "the CPU run's log shows MFU without run.peak_tflops"
! grep -q '"mfu"' "$run/metrics.jsonl" || fail "the CPU run's metrics.jsonl has mfu without run.peak_tflops"
"$py" "$src/tests/tensorboard_check.py" "$run" --files 1

sleep 1  # the resumed run's event file is named by a later second
"${train[@]}" --set run.peak_tflops=0.001 --resume "$run/checkpoints/step_00000003" >"$work/resumed.log" 2>&1 ||
  { cat "$work/resumed.log"; fail "the resumed run failed"; }
cat "$work/resumed.log"
grep -q "MFU against 0.001 TFLOP/s per device (from run.peak_tflops)" "$work/resumed.log" ||
  fail "the resumed run does not state its MFU peak"
[ "$(grep -cE 'step +[4-6]/6 \| loss .* tok/s \| MFU [0-9.]+% \| ETA' "$work/resumed.log")" = 3 ] ||
  fail "the resumed run's step lines 4..6 do not each show MFU"
[ "$(grep -c '"mfu":' "$run/metrics.jsonl")" = 3 ] || fail "metrics.jsonl does not have mfu in the 3 resumed steps"
"$py" "$src/tests/tensorboard_check.py" "$run" --files 2
grep -q "'train/mfu'" <("$py" "$src/tests/tensorboard_check.py" "$run") || fail "no train/mfu in the event files"

# log.tensorboard: false writes no event files
"${train[@]}" --set run.name=off --set log.tensorboard=false --set train.max_steps=2 >"$work/off.log" 2>&1 ||
  { cat "$work/off.log"; fail "the run with log.tensorboard=false failed"; }
[ -s "$work/off/metrics.jsonl" ] || fail "the run with log.tensorboard=false has no metrics.jsonl"
[ ! -e "$work/off/tensorboard" ] || fail "log.tensorboard=false still wrote $work/off/tensorboard"
echo PASS

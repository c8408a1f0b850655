#!/usr/bin/env bash
# Builds the files the CLI tests read, under WORK: a synthetic dataset, broken copies of it, a
# trained run with checkpoints, and damaged copies of a checkpoint.
#   fixture.sh BUILD_DIR SOURCE_DIR WORK
set -euo pipefail
build=$1
src=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
"$build/data_tools/autonomoe-data" synthetic --out-dir "$work/data" --name synth --vocab-size 64 \
  --tokens 20000 --val-tokens 4000 >/dev/null

# broken data: a truncated shard, a foreign file, a vocabulary mismatch, out-of-vocabulary tokens
mkdir -p "$work/truncated" "$work/foreign" "$work/oov"
head -c 3000 "$work/data/synth_train_000000.bin" >"$work/truncated/synth_train_000000.bin"
printf 'this is a text file, not a token shard %.0s' $(seq 1 100) >"$work/foreign/synth_train_000000.bin"
"$build/data_tools/autonomoe-data" synthetic --out-dir "$work/oov" --name synth --vocab-size 200 \
  --tokens 20000 --val-tokens 4000 >/dev/null
rm "$work/oov/dataset.json"   # plain shards: only the per-window token check can catch them

# a trained run with two checkpoints, and damaged copies of the last one
"$build/autonomoe" train --config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$work/runs" \
  --set "data.train=$work/data/synth_train_*.bin" --set "data.val=$work/data/synth_val_*.bin" >/dev/null
ckpt=$(ls -d "$work"/runs/small/checkpoints/step_* | tail -n 1)
for kind in corrupt truncated incomplete; do
  cp -r "$ckpt" "$work/ckpt_$kind"
done
printf '\x01' | dd of="$work/ckpt_corrupt/model.safetensors" bs=1 seek=2000 conv=notrunc status=none
size=$(stat -c %s "$work/ckpt_truncated/optimizer.safetensors")
truncate -s $((size - 100)) "$work/ckpt_truncated/optimizer.safetensors"
rm "$work/ckpt_incomplete/manifest.json"
echo "fixture ready in $work"

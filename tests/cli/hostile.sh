#!/usr/bin/env bash
# Hostile files and paths (issue 10 points 2, 3, 5, 7, 8, and the review's findings): prepares one case under WORK/hostile/CASE
# from the cli fixture's data and run, then execs the command that must refuse it (expect.sh
# checks the exit code and the message; ctest's TIMEOUT catches a hang).
#   hostile.sh BUILD_BIN_DIR SOURCE_DIR WORK CASE
set -euo pipefail
bin=$1/autonomoe
data_bin=$1/data_tools/autonomoe-data
src=$2
work=$3
case_name=$4
dir=$work/hostile/$case_name
rm -rf "$dir"
mkdir -p "$dir"
ckpt=$work/runs/small/checkpoints/step_00000006
common=(--config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$dir/runs")
with_data=(--set "data.train=$dir/data/synth_train_*.bin" --set "data.val=")
cp -r "$work/data" "$dir/data"

case $case_name in
  fifo_shard)  # a FIFO in place of a token shard
    rm "$dir/data/synth_train_000000.bin"
    mkfifo "$dir/data/synth_train_000000.bin"
    exec "$bin" train "${common[@]}" "${with_data[@]}" ;;
  dir_shard)  # a directory matched by the shard pattern
    mkdir "$dir/data/synth_train_000001.bin"
    exec "$bin" train "${common[@]}" "${with_data[@]}" ;;
  devnull_dataset)  # dataset.json is /dev/null (a character device)
    ln -sf /dev/null "$dir/data/dataset.json"
    exec "$bin" train "${common[@]}" "${with_data[@]}" ;;
  dir_dataset)  # dataset.json is a directory
    rm "$dir/data/dataset.json"
    mkdir "$dir/data/dataset.json"
    exec "$bin" train "${common[@]}" "${with_data[@]}" ;;
  fifo_config)
    mkfifo "$dir/config.yaml"
    exec "$bin" validate --config "$dir/config.yaml" ;;
  devzero_config)  # a config that is /dev/zero (endless zeros, were it read)
    ln -s /dev/zero "$dir/config.yaml"
    exec "$bin" train --config "$dir/config.yaml" ;;
  fifo_sweep)
    mkfifo "$dir/sweep.yaml"
    exec "$bin" sweep "$dir/sweep.yaml" --dry-run ;;
  dir_tokenizer)
    mkdir "$dir/tok.model"
    printf 'some text\n' >"$dir/doc.txt"
    exec "$data_bin" encode --tokenizer "$dir/tok.model" --input "$dir/doc.txt" --out-dir "$dir/out" --name x ;;
  fifo_input)
    mkfifo "$dir/doc.txt"
    exec "$data_bin" train-tokenizer --input "$dir/doc.txt" --vocab-size 300 --model-prefix "$dir/tok" ;;
  fifo_ckpt_file)  # a FIFO in place of a checkpoint's weights
    cp -r "$ckpt" "$dir/ckpt"
    rm "$dir/ckpt/model.safetensors"
    mkfifo "$dir/ckpt/model.safetensors"
    exec "$bin" eval --checkpoint "$dir/ckpt" ;;
  dir_ckpt_file)  # a directory in place of the trainer state, at resume
    cp -r "$ckpt" "$dir/ckpt"
    rm "$dir/ckpt/trainer_state.json"
    mkdir "$dir/ckpt/trainer_state.json"
    exec "$bin" train "${common[@]}" "${with_data[@]}" --resume "$dir/ckpt" ;;
  manifest_omits)  # an edited manifest that no longer lists the weights
    cp -r "$ckpt" "$dir/ckpt"
    sed -i '/"model.safetensors": {/,/}/d' "$dir/ckpt/manifest.json"
    exec "$bin" export --checkpoint "$dir/ckpt" --out "$dir/export" ;;
  out_dir_file)
    printf 'x' >"$dir/file"
    exec "$bin" train "${common[@]}" "${with_data[@]}" --set "run.out_dir=$dir/file" ;;
  out_dir_in_file)
    printf 'x' >"$dir/file"
    exec "$bin" train "${common[@]}" "${with_data[@]}" --set "run.out_dir=$dir/file/runs" ;;
  export_out_file)
    printf 'x' >"$dir/file"
    exec "$bin" export --checkpoint "$ckpt" --out "$dir/file" ;;
  sweep_out_dir_file)
    printf 'x' >"$dir/file"
    exec "$bin" sweep "$src/configs/sweeps/tiny_dlow.yaml" --set "run.out_dir=$dir/file" \
      --set "data.train=$dir/data/synth_train_*.bin" --set "data.val=" ;;
  fifo_checkpoints | file_checkpoints | dangling_checkpoints)  # runs/<name>/checkpoints is not a directory
    mkdir -p "$dir/runs/small"
    case $case_name in
      fifo_checkpoints) mkfifo "$dir/runs/small/checkpoints" ;;
      file_checkpoints) printf 'x' >"$dir/runs/small/checkpoints" ;;
      dangling_checkpoints) ln -s "$dir/nowhere" "$dir/runs/small/checkpoints" ;;
    esac
    exec "$bin" train "${common[@]}" "${with_data[@]}" ;;
  export_out_is_ckpt | export_out_in_ckpt)  # export onto the checkpoint itself: refused, the checkpoint intact
    cp -r "$ckpt" "$dir/ckpt"
    out=$dir/ckpt
    [ "$case_name" = export_out_in_ckpt ] && out=$dir/ckpt/../ckpt/hf
    set +e
    "$bin" export --checkpoint "$dir/ckpt" --out "$out"
    code=$?
    "$bin" eval --checkpoint "$dir/ckpt" >/dev/null || { echo "FAIL: the checkpoint was damaged"; exit 1; }
    exit $code ;;
  already_complete)  # the fixture's run ended at train.max_steps 6
    exec "$bin" train "${common[@]}" "${with_data[@]}" --resume "$ckpt" ;;
  metrics_full)  # metrics.jsonl on a full disk
    mkdir -p "$dir/runs/small"
    ln -s /dev/full "$dir/runs/small/metrics.jsonl"
    exec "$bin" train "${common[@]}" "${with_data[@]}" ;;
  signal_in_setup)  # SIGTERM right after the model is built: exit 0, nothing written
    set +e
    AM_TEST_SIGNAL_IN_SETUP=model "$bin" train "${common[@]}" "${with_data[@]}"
    code=$?
    if [ -e "$dir/runs/small" ]; then echo "FAIL: the run directory was created"; exit 1; fi
    exit $code ;;
  *)
    echo "hostile.sh: unknown case $case_name" >&2
    exit 2 ;;
esac

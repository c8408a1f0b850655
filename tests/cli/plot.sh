#!/usr/bin/env bash
# The plots of scripts/plot.py (docs/training.md, "Plots"; docs/sweeps.md, "The ablation plot").
#   plot.sh run   BIN SOURCE_DIR WORK   plots the CLI fixture's trained run (a router MoE, 6 steps) and
#                                       one AoE run; checks every PNG (tests/cli/png_check.py)
#   plot.sh sweep BIN SOURCE_DIR WORK   runs configs/sweeps/tiny_dlow.yaml for 6 steps a point, plots it
#                                       (default x: d_low; --x load_balance --out DIR) and checks the PNGs
#   plot.sh bad   BIN SOURCE_DIR DIR    makes the broken inputs the error tests plot, in DIR
# Exits 77 (ctest: skipped) when matplotlib is not installed (scripts/setup.sh installs it).
set -euo pipefail
mode=$1
bin=$2
src=$3
work=$4
plot=$src/scripts/plot.py
check="python3 $src/tests/cli/png_check.py"
data=(--set "data.train=$work/data/synth_train_*.bin" --set "data.val=$work/data/synth_val_*.bin")

have_matplotlib() {
  python3 -c 'import matplotlib' 2>/dev/null || /usr/bin/python3 -c 'import matplotlib' 2>/dev/null
}

# each expected file is listed by plot.py's output and passes png_check.py; nothing else is written
expect_pngs() {  # OUTPUT_OF_PLOT DIR FILE...
  local out=$1 dir=$2
  shift 2
  for f in "$@"; do
    grep -qF "wrote $dir/$f" <<<"$out" || { echo "FAIL: plot.py did not report $dir/$f"; exit 1; }
    $check "$dir/$f"
  done
  local n
  n=$(find "$dir" -name '*.png' | wc -l)
  [ "$n" -eq $# ] || { echo "FAIL: $dir holds $n PNG files, expected $#: $*"; ls "$dir"; exit 1; }
}

case $mode in
  run)
    have_matplotlib || { echo "skipped: matplotlib is not installed (apt-get install python3-matplotlib)"; exit 77; }
    rm -rf "$work/plot_run" && mkdir -p "$work/plot_run"
    cp -r "$work/runs/small" "$work/plot_run/small"   # the fixture's run (read by other tests too)
    rm -rf "$work/plot_run/small/plots"
    out=$("$plot" "$work/plot_run/small")
    echo "$out"
    expect_pngs "$out" "$work/plot_run/small/plots" loss.png lr.png expert_load.png entropy.png
    # an AoE run (activation-norm scorer): its mean activation norm per expert too
    "$bin" train --config "$src/configs/sweeps/tiny_base.yaml" "${data[@]}" --set run.out_dir="$work/plot_run" \
      --set run.name=aoe --set train.max_steps=6 --set log.every=2 --set run.threads=1 >/dev/null
    out=$("$plot" "$work/plot_run/aoe" --out "$work/plot_run/aoe_plots")
    echo "$out"
    expect_pngs "$out" "$work/plot_run/aoe_plots" loss.png lr.png expert_load.png entropy.png act_norm.png
    ;;
  sweep)
    have_matplotlib || { echo "skipped: matplotlib is not installed (apt-get install python3-matplotlib)"; exit 77; }
    rm -rf "$work/plot_sweep"
    "$bin" sweep "$src/configs/sweeps/tiny_dlow.yaml" --set run.out_dir="$work/plot_sweep" \
      --set train.max_steps=6 --set eval.every=2 --set run.threads=1 "${data[@]}" >/dev/null
    dir=$work/plot_sweep/tiny_dlow
    out=$("$plot" "$dir")
    echo "$out"
    expect_pngs "$out" "$dir/plots" ablation.png val_curves.png
    out=$("$plot" "$dir" --x load_balance --out "$work/plot_sweep/by_load_balance")
    echo "$out"
    expect_pngs "$out" "$work/plot_sweep/by_load_balance" ablation.png val_curves.png
    ;;
  bad)
    bad=$work
    rm -rf "$bad" && mkdir -p "$bad/no_metrics" "$bad/empty_run" "$bad/val_only" "$bad/sweep_failed" "$bad/fake/matplotlib"
    : >"$bad/empty_run/metrics.jsonl"
    echo '{"step":6,"tokens":128,"type":"val","val_loss":3.6,"val_ppl":36.6}' >"$bad/val_only/metrics.jsonl"
    # results.csv as autonomoe sweep writes it when every point failed (src/sweep/results.cpp)
    {
      echo 'point,model.moe.aux.load_balance,model.moe.expert.d_low,final_train_loss,final_val_loss,tokens_per_s,experts_per_token,ent_load,params_total,params_active,status,run_dir'
      echo '"load_balance=0,d_low=8",0.0,8,,,,,,36960,24704,failed,"runs/tiny_dlow/load_balance=0,d_low=8"'
      echo '"load_balance=0,d_low=16",0.0,16,,,,,,37024,24736,pending,"runs/tiny_dlow/load_balance=0,d_low=16"'
    } >"$bad/sweep_failed/results.csv"
    # a matplotlib that cannot be imported, first on PYTHONPATH
    echo 'raise ImportError("no matplotlib here (tests/cli/plot.sh)")' >"$bad/fake/matplotlib/__init__.py"
    ;;
  *)
    echo "plot.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac

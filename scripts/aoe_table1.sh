#!/usr/bin/env bash
# AoE Table 1 for one router-trained checkpoint: validation loss when experts are selected by the
# activation norm of an inner node instead of the router, for every node x norm, plus the router.
#   scripts/aoe_table1.sh CHECKPOINT [DATA_GLOB] [BATCHES]
# Prints a markdown table (loss / perplexity / seconds per cell). Uses build/autonomoe.
# With AM_TASK=FILE.jsonl the cells are multiple-choice accuracies on that task file instead
# (acc / acc_norm / seconds; docs/evaluation.md); DATA_GLOB and BATCHES are then not used.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?usage: scripts/aoe_table1.sh CHECKPOINT [DATA_GLOB] [BATCHES]}
data=${2:-}
batches=${3:-}
bin=${AM_BUILD_DIR:-build}/autonomoe
extra=()
task=${AM_TASK:-}
if [ -n "$task" ]; then
  extra+=(--task "$task")
else
  [ -n "$data" ] && extra+=(--data "$data")
  [ -n "$batches" ] && extra+=(--batches "$batches")
fi

cell() {  # prints "loss (ppl, s)" or, with AM_TASK, "acc (acc_norm, s)" of one evaluation
  local out
  out=$("$bin" eval --checkpoint "$ckpt" ${extra[@]+"${extra[@]}"} "$@" 2>/dev/null) || { echo "error"; return; }
  if [ -n "$task" ]; then
    sed -n 's/.*: acc \([0-9.]*\) ([0-9]*\/[0-9]*) | acc_norm \([0-9.]*\) ([0-9]*\/[0-9]*) | \([0-9.]*\) s.*/\1 (acc_norm \2, \3 s)/p' <<<"$out"
  else
    sed -n 's/.*loss \([0-9.]*\) | perplexity \([0-9.]*\) | [0-9]* tokens | \([0-9.]*\) s.*/\1 (ppl \2, \3 s)/p' <<<"$out"
  fi
}

echo "| node | L1 | L2 | Linf |"
echo "|---|---|---|---|"
for node in gate up act glu out; do
  row="| $node"
  for norm in l1 l2 linf; do
    row+=" | $(cell --set model.moe.scorer.type=act_norm --set model.moe.scorer.node=$node \
                    --set model.moe.scorer.norm=$norm --set model.moe.aux.z_loss=0)"
  done
  echo "$row |"
done
echo "| router (as trained) | $(cell) | | |"

#!/usr/bin/env bash
# AoE Table 1 for one router-trained checkpoint: validation loss when experts are selected by the
# activation norm of an inner node instead of the router, for every node x norm, plus the router.
#   scripts/aoe_table1.sh CHECKPOINT [DATA_GLOB] [BATCHES]
# Prints a markdown table (loss / perplexity / seconds per cell). Uses build/autonomoe.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?usage: scripts/aoe_table1.sh CHECKPOINT [DATA_GLOB] [BATCHES]}
data=${2:-}
batches=${3:-}
bin=${AM_BUILD_DIR:-build}/autonomoe
extra=()
[ -n "$data" ] && extra+=(--data "$data")
[ -n "$batches" ] && extra+=(--batches "$batches")

cell() {  # prints "loss (ppl, s)" of one evaluation
  local out
  out=$("$bin" eval --checkpoint "$ckpt" "${extra[@]}" "$@" 2>/dev/null) || { echo "error"; return; }
  sed -n 's/.*loss \([0-9.]*\) | perplexity \([0-9.]*\) | [0-9]* tokens | \([0-9.]*\) s.*/\1 (ppl \2, \3 s)/p' <<<"$out"
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

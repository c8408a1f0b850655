# Shared by tests/sim/*.sh (sourced): a fresh work folder with a synthetic dataset, and the
# comparison of two runs' per-step training losses.

# sim_setup BUILD WORK: WORK emptied, with data/synth_{train,val}_*.bin (vocabulary 64).
sim_setup() {
  rm -rf "$2"
  mkdir -p "$2"
  "$1/data_tools/autonomoe-data" synthetic --out-dir "$2/data" --name synth --vocab-size 64 \
    --tokens 20000 --val-tokens 4000 >/dev/null
}

# The training losses of a run directory, one per step.
losses() { jq -r 'select(.type == "train") | .loss' "$1/metrics.jsonl"; }

# compare_losses RUN_A RUN_B TOLERANCE STEPS: one line of result; ends in FAILED unless both runs
# logged STEPS steps and every step's losses agree to TOLERANCE relative.
compare_losses() {
  paste <(losses "$1") <(losses "$2") | awk -v tol="$3" -v steps="$4" '
    { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > worst) worst = r; if (r > tol) bad++ }
    END { printf "%d steps, largest relative difference %.2e (tolerance %s)%s", n, worst, tol,
          (n == steps && bad == 0) ? "" : " FAILED" }'
}

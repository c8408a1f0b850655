#!/usr/bin/env python3
"""Compares the validation losses of training logs by precision (bf16 against fp32).

Usage: bench/precision_table.py LOG [LOG ...]

Each LOG is the console output of `autonomoe train` (its config table names run.precision, its
evaluations print "step S/N | val loss L"). The runs are grouped by precision; for every
evaluation step that all runs reached, the table gives each group's mean validation loss, the
relative difference of the means (bf16 / fp32 - 1), the largest difference within a pair of
runs whose configs differ only in the precision, and each group's own spread (largest / smallest - 1): the scale that a
difference between two single runs has to be read against. docs/benchmarks.md ("bf16 vs fp32
over 800 steps") explains why.
"""
import re
import sys
from collections import defaultdict

PRECISION = re.compile(r"^run\.precision\s+(\S+)")
# Two runs are a pair when their configs differ only in these keys (and run.precision).
IGNORED = {"run.name", "run.out_dir", "run.threads", "run.precision"}
CONFIG = re.compile(r"^((?:run|model|data|train|log|eval|checkpoint|dist)\.\S+)\s+(\S+)")
VAL = re.compile(r"step\s+(\d+)/\d+ \| val loss ([0-9.]+)")


def read(path):
    precision, vals, config = None, {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = PRECISION.match(line)
            if m and precision is None:
                precision = m.group(1)
            m = CONFIG.match(line)
            if m and m.group(1) not in IGNORED:
                config.append((m.group(1), m.group(2)))
            m = VAL.search(line)
            if m:
                vals[int(m.group(1))] = float(m.group(2))
    if precision is None:
        sys.exit(f"precision_table.py: {path}: no 'run.precision' line (not an autonomoe train log?)")
    if not vals:
        sys.exit(f"precision_table.py: {path}: no 'val loss' line (the run made no evaluation)")
    return precision, vals, tuple(config)


def spread(xs):
    return max(xs) / min(xs) - 1 if len(xs) > 1 else 0.0


def main(paths):
    if not paths:
        sys.exit(__doc__)
    groups = defaultdict(list)
    by_config = defaultdict(dict)  # config without precision -> {precision: vals}
    for p in paths:
        precision, vals, config = read(p)
        groups[precision].append(vals)
        by_config[config][precision] = vals
    pairs = [c for c in by_config.values() if "fp32" in c and "bf16" in c]
    for need in ("fp32", "bf16"):
        if need not in groups:
            sys.exit(f"precision_table.py: no {need} log among the {len(paths)} given (found: {sorted(groups)})")
    f32, b16 = groups["fp32"], groups["bf16"]
    steps = sorted(set.intersection(*(set(v) for v in f32 + b16)))
    print(f"{len(f32)} fp32 run(s), {len(b16)} bf16 run(s), {len(pairs)} pair(s) identical but for the "
          "precision; validation loss at the evaluations all reached\n")
    print("| step | fp32 mean | bf16 mean | bf16 / fp32 - 1 (means) | pairs: largest abs(bf16 / fp32 - 1) "
          "| fp32 spread | bf16 spread |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in steps:
        a = [v[s] for v in f32]
        b = [v[s] for v in b16]
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        pair = max((abs(c["bf16"][s] / c["fp32"][s] - 1) for c in pairs), default=float("nan"))
        print(f"| {s} | {ma:.4f} | {mb:.4f} | {100 * (mb / ma - 1):+.2f}% | {100 * pair:.2f}% "
              f"| {100 * spread(a):.2f}% | {100 * spread(b):.2f}% |")


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Compares two `autonomoe eval --task ... --samples FILE` outputs: the same examples, labels and
byte lengths, and log-likelihoods equal within a relative tolerance.
usage: compare_samples.py A.jsonl B.jsonl RTOL"""
import json
import sys

a_path, b_path, rtol = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(a_path) as fa, open(b_path) as fb:
    a = [json.loads(line) for line in fa]
    b = [json.loads(line) for line in fb]
if len(a) != len(b) or not a:
    sys.exit(f"FAIL: {len(a)} examples in {a_path}, {len(b)} in {b_path}")
worst, n = 0.0, 0
for x, y in zip(a, b):
    for k in ("line", "label", "bytes"):
        if x[k] != y[k]:
            sys.exit(f"FAIL: line {x['line']}: {k} {x[k]} != {y[k]}")
    for p, q in zip(x["loglik"], y["loglik"]):
        rel = abs(p - q) / max(abs(p), 1e-30)
        worst, n = max(worst, rel), n + 1
        if rel > rtol:
            sys.exit(f"FAIL: line {x['line']}: log-likelihood {p} vs {q} (relative {rel:.3g} > {rtol})")
print(f"scores match: {n} choices, largest relative difference {worst:.3g}")

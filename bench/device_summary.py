#!/usr/bin/env python3
"""summary.md of a device_check.sh run: its stages, the compute-sanitizer tools, and one benchmark
table built from the JSON lines of autonomoe-bench and bench/torch_moe.py.

    python3 bench/device_summary.py --jsonl OUT/bench.jsonl [--stages STAGES.tsv]
        [--sanitizer SANITIZER.tsv] > OUT/summary.md

STAGES.tsv: stage, status, seconds, cap (tab-separated, one line per stage as it ends).
SANITIZER.tsv: tool, result, seconds, cap, errors. Lines of bench.jsonl without "impl" are
autonomoe-bench's; torch_moe.py's say "impl": "pytorch" and their "mode".
"""
import argparse
import json
import os
import sys


def rows_of(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def results(path):
    out = []
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        print("device_summary: skipped a line that is not JSON: %.80s" % line, file=sys.stderr)
    return out


def name(r):  # the config's file name; its --set overrides are in bench.jsonl
    return os.path.basename(r["config"]).replace(".yaml", "")


def impl(r):
    return "PyTorch, " + r.get("mode", "?") if r.get("impl") == "pytorch" else "autonomoe"


def bench_table(rs):
    moe = {}  # tokens/s of the traditional MoE (t2_r02) per implementation
    ours = {}  # autonomoe's tokens/s per config
    for r in rs:
        if os.path.basename(r["config"]).startswith("t2_r02"):
            moe[impl(r)] = r["tokens_per_s"]
        if r.get("impl") != "pytorch":
            ours[r["config"]] = (r["tokens_per_s"], r["flops_per_token"])
    lines = ["| model | implementation | tokens/s | MFU | peak memory | median step | ÷ the same implementation's "
             "MoE (t2_r02) | autonomoe ÷ this | FLOPs/token |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rs:
        mem = r.get("peak_memory_bytes")
        base = moe.get(impl(r))
        vs_ours, flops = "", "%.4g G" % (r["flops_per_token"] / 1e9)
        if r.get("impl") == "pytorch" and r["config"] in ours:
            vs_ours = "%.2f" % (ours[r["config"]][0] / r["tokens_per_s"])
            if ours[r["config"]][1] != r["flops_per_token"]:
                flops += " (autonomoe-bench: %.4g G: DIFFERENT)" % (ours[r["config"]][1] / 1e9)
        lines.append("| %s | %s | %.0f | %.1f%% | %s | %.1f ms | %s | %s | %s |" % (
            name(r), impl(r), r["tokens_per_s"], 100 * r["mfu"],
            "%.1f GiB" % (mem / 2**30) if mem else "n/a", r["median_step_ms"],
            "%.2f" % (r["tokens_per_s"] / base) if base else "", vs_ours, flops))
    return lines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jsonl")
    p.add_argument("--stages")
    p.add_argument("--sanitizer")
    p.add_argument("--title", default="device_check.sh")
    a = p.parse_args()
    out = ["# %s" % a.title, "", "## Stages", "", "| stage | status | seconds | cap (s) |", "| --- | --- | ---: | ---: |"]
    out += ["| %s |" % " | ".join(r) for r in rows_of(a.stages)]
    san = rows_of(a.sanitizer)
    if san:
        out += ["", "## compute-sanitizer on the CUDA tests `[cuda]~[large]`", "",
                "| tool | result | seconds | cap (s) | errors reported |", "| --- | --- | ---: | ---: | ---: |"]
        out += ["| %s |" % " | ".join(r) for r in san]
    rs = results(a.jsonl)
    if rs:
        r0 = rs[0]
        out += ["", "## Training throughput (one micro-batch per optimizer step, B %s x T %s, random tokens)" % (
            r0.get("micro_batch"), r0.get("seq_len")), "",
            "MFU = FLOPs/token x tokens/s / %g TFLOP/s; FLOPs/token = 6 (active - V d) + 6 L T H hd "
            "(docs/benchmarks.md). Median of the timed steps after the warm-up." % r0.get("peak_tflops", 989), ""]
        out += bench_table(rs)
        tp = [r for r in rs if r.get("impl") == "pytorch"]
        if tp:
            out += ["", "PyTorch warm-up: " + "; ".join(
                "%s (%s): first step %.1f s, warm-up beyond steady steps %.1f s" % (
                    name(r), r.get("mode"), r["first_step_s"], r["compile_s"]) for r in tp)]
    print("\n".join(out))


if __name__ == "__main__":
    main()

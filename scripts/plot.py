#!/usr/bin/env python3
"""Plots of a run directory or a sweep directory, as PNG files (docs/training.md, "Plots").

  scripts/plot.py RUN_DIR   [--out DIR]            # from RUN_DIR/metrics.jsonl
  scripts/plot.py SWEEP_DIR [--out DIR] [--x KEY]  # from SWEEP_DIR/results.csv (autonomoe sweep)

A run gives loss.png (train and validation loss), lr.png (learning rate), expert_load.png (each
MoE layer's load per expert over training, a heatmap), entropy.png (Ent_load and Ent_conf per
layer) and, for activation-norm scorers, act_norm.png (mean activation norm per expert). A sweep
gives ablation.png (final validation loss against the swept key KEY, one line per value of the
other swept keys) and val_curves.png (each point's validation loss during training).
The default output folder is DIR/plots. Needs matplotlib (Debian: apt-get install python3-matplotlib).
"""
import argparse
import csv
import json
import math
import os
import sys

# The columns results.csv holds after the swept keys (src/sweep/results.cpp).
SWEEP_METRICS = ["final_train_loss", "final_val_loss", "tokens_per_s", "experts_per_token", "ent_load"]
SYSTEM_PYTHON = "/usr/bin/python3"  # the interpreter Debian's python3-matplotlib installs for


class PlotError(Exception):
    pass


# ---- reading -----------------------------------------------------------------------------------

def read_metrics(path):
    """The records of a metrics.jsonl, by type: {"train": [...], "val": [...]}, each sorted by step
    with one record per step (the last one written wins, as after a resume)."""
    if not os.path.isfile(path):
        raise PlotError(f"'{path}' not found: a run directory holds metrics.jsonl once it has "
                        "logged a step (autonomoe train writes it)")
    by_type = {}
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1  # a line cut short by a crash
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                skipped += 1
                continue
            by_type.setdefault(rec.get("type"), {})[rec["step"]] = rec
    if skipped:
        print(f"plot: skipped {skipped} unreadable line(s) of '{path}'", file=sys.stderr)
    out = {t: [recs[s] for s in sorted(recs)] for t, recs in by_type.items()}
    if not out.get("train"):
        raise PlotError(f"'{path}' holds no training record (\"type\": \"train\"): the run has not "
                        "logged a step yet (records come every log.every steps)")
    return out


def read_sweep(path):
    """results.csv as (swept keys, rows as dicts)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or "point" not in rows[0] or "final_val_loss" not in rows[0]:
        raise PlotError(f"'{path}' is not a sweep's results.csv (its header lacks point, final_val_loss)")
    header = rows[0]
    keys = header[header.index("point") + 1:header.index(SWEEP_METRICS[0])]
    table = [dict(zip(header, r)) for r in rows[1:] if len(r) == len(header)]
    if not table:
        raise PlotError(f"'{path}' lists no point")
    return keys, table


def pick_key(keys, wanted, path):
    """The swept key named by --x: a full path or its last components; default d_low, else the first."""
    if not keys:
        raise PlotError(f"'{path}' has no swept key column")
    if wanted is None:
        return next((k for k in keys if k.endswith("d_low")), keys[0])
    matches = [k for k in keys if k == wanted or k.endswith("." + wanted)]
    if len(matches) != 1:
        what = "matches several" if matches else "is not one"
        raise PlotError(f"--x {wanted} {what} of the swept keys of '{path}': {', '.join(keys)}")
    return matches[0]


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


# ---- figures -----------------------------------------------------------------------------------

def layer_series(train, field):
    """(steps, values[layer][record]) of a per-layer MoE field, over the records that have it."""
    recs = [r for r in train if r.get("moe") and all(field in m for m in r["moe"])]
    if not recs:
        return [], []
    n_layers = min(len(r["moe"]) for r in recs)
    return [r["step"] for r in recs], [[r["moe"][l][field] for r in recs] for l in range(n_layers)]


def plot_loss(plt, m, name, out):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    train = [r for r in m["train"] if number(r.get("loss")) is not None]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", lw=1.2)
    val = [r for r in m.get("val", []) if number(r.get("val_loss")) is not None]
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation loss")
        last = val[-1]
        ax.annotate(f"{last['val_loss']:.4f}", (last["step"], last["val_loss"]), textcoords="offset points",
                    xytext=(-10, 8), ha="right")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per token)", title=f"{name}: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(plt, fig, out, "loss.png")


def plot_lr(plt, m, name, out):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    train = [r for r in m["train"] if number(r.get("lr")) is not None]
    ax.plot([r["step"] for r in train], [r["lr"] for r in train])
    ax.set(xlabel="step", ylabel="learning rate", title=f"{name}: learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.grid(alpha=0.3)
    return save(plt, fig, out, "lr.png")


def plot_expert_grid(plt, m, name, out, field, label, title, file):
    """One heatmap per layer of the per-expert vector `field` (x: step, y: expert). The load is shown
    relative to a uniform one (n x share: 1 = balanced, 2 = twice its share), on a map centred on 1."""
    from matplotlib.colors import TwoSlopeNorm
    steps, layers = layer_series(m["train"], field)
    if not layers or not layers[0] or not layers[0][0]:
        return None
    if field == "load":
        layers = [[[x * len(v) for x in v] for v in layer] for layer in layers]
    n_layers = len(layers)
    cols = min(n_layers, 4)
    rows = math.ceil(n_layers / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 1, 2.8 * rows + 0.8), squeeze=False,
                             layout="constrained")
    vmax = max(max(max(v) for v in layer) for layer in layers)
    vmin = min(min(min(v) for v in layer) for layer in layers)
    if field == "load":
        style = dict(norm=TwoSlopeNorm(vcenter=1.0, vmin=0.0, vmax=max(vmax, 1.0 + 1e-6)), cmap="RdBu_r")
    else:
        style = dict(vmin=vmin, vmax=vmax, cmap="viridis")
    # a record covers the steps since the previous one: its column spans (previous step, step]
    edges = [steps[0] - 1] + steps
    image = None
    for l, ax in enumerate(axes.flat):
        if l >= n_layers:
            ax.axis("off")
            continue
        grid = list(map(list, zip(*layers[l])))  # experts x records
        image = ax.pcolormesh(edges, range(len(grid) + 1), grid, **style)
        ax.set(title=f"layer {l}", xlabel="step", ylabel="expert")
        ax.set_yticks([e + 0.5 for e in range(len(grid))], [str(e) for e in range(len(grid))])
    fig.colorbar(image, ax=axes, label=label, shrink=0.9)
    fig.suptitle(f"{name}: {title}")
    return save(plt, fig, out, file)


def plot_entropy(plt, m, name, out):
    panels = [("ent_load", "Ent_load (AoE Eq. 7)"), ("ent_conf", "Ent_conf (AoE Eq. 8)")]
    panels = [(f, t, *layer_series(m["train"], f)) for f, t in panels]
    panels = [p for p in panels if p[3]]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False,
                             layout="constrained")
    n_experts = max((len(r["moe"][0].get("load", [])) for r in m["train"] if r.get("moe")), default=0)
    for ax, (field, title, steps, layers) in zip(axes.flat, panels):
        for l, values in enumerate(layers):
            ax.plot(steps, values, label=f"layer {l}")
        if n_experts > 1:
            ax.axhline(math.log(n_experts), ls="--", c="gray", lw=1, label=f"log {n_experts} (uniform)")
        ax.set(xlabel="step", ylabel="nats", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"{name}: routing entropies per layer")
    return save(plt, fig, out, "entropy.png")


def plot_sweep(plt, sweep_dir, keys, table, xkey, out):
    others = [k for k in keys if k != xkey]
    series, missing = {}, []
    for row in table:
        y = number(row.get("final_val_loss"))
        if y is None:
            missing.append(f"{row['point']} ({row.get('status', '?')})")
            continue
        label = ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in others)
        series.setdefault(label, []).append((row[xkey], y))
    if missing:
        print(f"plot: no validation loss for {len(missing)} point(s): {', '.join(missing)}", file=sys.stderr)
    if not series:
        raise PlotError(f"no point of '{os.path.join(sweep_dir, 'results.csv')}' has a final_val_loss "
                        "(run the sweep to completion first)")
    xs = [x for pts in series.values() for x, _ in pts]
    numeric = all(number(x) is not None for x in xs)
    categories = list(dict.fromkeys(xs))  # sweep order
    if numeric:
        categories.sort(key=number)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in series.items():
        pts.sort(key=lambda p: categories.index(p[0]))
        px = [number(x) if numeric else categories.index(x) for x, _ in pts]
        ax.plot(px, [y for _, y in pts], "o-", label=label or "final validation loss")
    if numeric:
        vals = [number(x) for x in categories]
        if min(vals) > 0 and max(vals) / min(vals) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(vals, categories)
        ax.minorticks_off()
    else:
        ax.set_xticks(range(len(categories)), categories)
    ax.set(xlabel=xkey, ylabel="final validation loss",
           title=f"sweep {os.path.basename(os.path.normpath(sweep_dir))}: validation loss against {xkey.split('.')[-1]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save(plt, fig, out, "ablation.png")


def plot_sweep_curves(plt, sweep_dir, table, out):
    """Each point's validation loss during training, from its run directory's metrics.jsonl."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for row in table:
        path = os.path.join(sweep_dir, row["point"], "metrics.jsonl")
        if not os.path.isfile(path):
            continue
        try:
            val = read_metrics(path).get("val", [])
        except PlotError:
            continue
        if val:
            ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", ms=3, label=row["point"])
            drawn += 1
    if drawn == 0:
        plt.close(fig)
        return None
    name = os.path.basename(os.path.normpath(sweep_dir))
    ax.set(xlabel="step", ylabel="validation loss", title=f"sweep {name}: validation loss of each point during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return save(plt, fig, out, "val_curves.png")


def save(plt, fig, out, file):
    path = os.path.join(out, file)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ---- main --------------------------------------------------------------------------------------

def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        # Debian's python3-matplotlib is installed for the system interpreter; a python3 earlier on
        # PATH (pyenv, a venv) does not see it: run again under the system one.
        if (os.path.exists(SYSTEM_PYTHON) and not os.environ.get("AM_PLOT_REEXEC")
                and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)):
            os.environ["AM_PLOT_REEXEC"] = "1"
            os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
        raise PlotError(f"matplotlib is not installed for {sys.executable}: install Debian's python3-matplotlib "
                        "(sudo apt-get install python3-matplotlib, or scripts/setup.sh), or "
                        "pip install matplotlib for this interpreter")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def main(argv):
    ap = argparse.ArgumentParser(prog="plot.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a run directory (metrics.jsonl) or a sweep directory (results.csv)")
    ap.add_argument("--out", help="output folder (default DIR/plots)")
    ap.add_argument("--x", help="sweeps: the swept key on the x axis, full (model.moe.expert.d_low) or "
                                "its last components (d_low); default d_low when swept, else the first key")
    args = ap.parse_args(argv)
    d = args.dir
    if not os.path.isdir(d):
        raise PlotError(f"'{d}' is not a directory" if os.path.exists(d) else f"'{d}' does not exist")
    results = os.path.join(d, "results.csv")
    is_sweep = os.path.isfile(results)
    if not is_sweep and args.x is not None:
        raise PlotError(f"--x is for sweep directories, and '{d}' has no results.csv")
    if is_sweep:
        keys, table = read_sweep(results)
        xkey = pick_key(keys, args.x, results)
    else:
        metrics = read_metrics(os.path.join(d, "metrics.jsonl"))
    plt = import_pyplot()
    out = args.out or os.path.join(d, "plots")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise PlotError(f"cannot create the output folder '{out}': {e.strerror}")
    if is_sweep:
        written = [plot_sweep(plt, d, keys, table, xkey, out), plot_sweep_curves(plt, d, table, out)]
    else:
        name = os.path.basename(os.path.normpath(os.path.abspath(d)))
        written = [plot_loss(plt, metrics, name, out), plot_lr(plt, metrics, name, out),
                   plot_expert_grid(plt, metrics, name, out, "load", "load x n (1 = balanced)",
                                    "expert load per layer (share of the layer's assignments x n experts)",
                                    "expert_load.png"),
                   plot_entropy(plt, metrics, name, out),
                   plot_expert_grid(plt, metrics, name, out, "act_norm", "mean activation norm",
                                    "mean activation norm per expert (AoE Fig. 4)",
                                    "act_norm.png")]
    for path in filter(None, written):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except PlotError as e:
        print(f"plot: error: {e}", file=sys.stderr)
        sys.exit(1)

#!/usr/bin/env python3
"""The layers of the code import downward only (issue 13 point 2; docs/architecture.md, "Layers").
  layering.py ROOT          exit 1 naming each upward include as FILE:LINE: #include "..." and why
  layering.py --graph ROOT  print the directory -> directory include edges (with counts)
ROOT holds src/, cuda/ and data_tools/ (the repository, or a test fixture). Each #include line is
resolved as the compiler would find it (the including file's directory for a quoted include, then
src/, cuda/, cuda/sim/include/, cuda/sim/); one that names no file of ROOT is a system or
third-party header and is ignored, unless its first component is a layer's directory name.
Limits: it reads lines, not the preprocessor, so an include inside a block comment or under a
false #if is checked too (stricter, never laxer); a macro-named include is not seen."""
import os
import re
import sys

# Lowest first. A file may include files of its own layer's directory and of any layer on an
# earlier line; layers on the same line are independent and must not include each other.
LAYERS = [
    ["core"],                                # the op interface (Backend), tensors, errors, rng
    ["cpu", "sim", "params", "io", "comm"],  # CPU backend, CUDA simulator, parameter table, files
    ["cuda", "config", "data"],              # CUDA backend (on sim with g++); config; data (io)
    ["dist"],                                # communicators, process groups, gradient reduction
    ["backends", "moe"],                     # make_backend (cpu, cuda, dist/launch); the MoE layer
    ["model"],                               # the transformer around moe/
    ["train"],                               # step, optimizer, trainer, checkpoints, evaluation
    ["sweep", "data_tools"],                 # sweeps over train(); the autonomoe-data tool
    ["cli"],                                 # the autonomoe commands
]
# Files that sit in a lower layer than their directory. dist/comm.h is the communicator interface:
# cuda/nccl_comm implements it as cpu/ and cuda/ implement core's Backend, while dist/launch.cpp,
# the factory of communicators, picks the NCCL one from cuda/.
FILE_LAYERS = {"src/dist/comm.h": "comm"}
INCLUDE_ROOTS = ["src", "cuda", "cuda/sim/include", "cuda/sim"]
SOURCE_TOPS = ["src", "cuda", "data_tools"]
SUFFIXES = (".h", ".hpp", ".cpp", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

RANK = {name: i for i, line in enumerate(LAYERS) for name in line}


def layer_of(rel):
    """The layer of a file given by its path relative to ROOT; None if it is in no layer."""
    if rel in FILE_LAYERS:
        return FILE_LAYERS[rel]
    parts = rel.split("/")
    if parts[0] == "src":
        return parts[1] if len(parts) > 2 else None
    if parts[0] == "cuda":
        return "sim" if len(parts) > 2 and parts[1] == "sim" else "cuda"
    if parts[0] == "data_tools":
        return "data_tools"
    return None


def resolve(root, rel, kind, path):
    """The included file's path relative to ROOT, or None for a header outside ROOT."""
    dirs = ([os.path.dirname(rel)] if kind == '"' else []) + INCLUDE_ROOTS
    for d in dirs:
        candidate = os.path.normpath(os.path.join(d, path))
        if os.path.isfile(os.path.join(root, candidate)):
            return candidate
    return None


def target_layer(root, rel, kind, path):
    found = resolve(root, rel, kind, path)
    if found is not None:
        return layer_of(found)
    first = path.split("/")[0]
    return first if "/" in path and first in RANK and first != "comm" else None


def sources(root):
    for top in SOURCE_TOPS:
        for dirpath, dirnames, names in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(names):
                if name.endswith(SUFFIXES):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def edges(root):
    """(file, line number, include text, from layer, to layer) for every include between layers."""
    for rel in sources(root):
        src = layer_of(rel)
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                kind, path = m.groups()
                dst = target_layer(root, rel, kind, path)
                if dst is not None and dst != src:
                    text = f'#include {kind}{path}{">" if kind == "<" else chr(34)}'
                    yield rel, number, text, src, dst


def check(root):
    problems, files = [], list(sources(root))
    unknown = sorted({layer_of(r) for r in files} - set(RANK) - {None})
    for name in unknown:
        problems.append(f"src/{name}/: a directory in no layer: add it to LAYERS in layering.py "
                        "and to docs/architecture.md")
    for rel, number, text, src, dst in edges(root):
        if src not in RANK or dst not in RANK:
            continue
        if RANK[dst] > RANK[src]:
            problems.append(f"{rel}:{number}: {text}: upward include: {src} (layer {RANK[src] + 1}) "
                            f"may not include {dst} (layer {RANK[dst] + 1})")
        elif RANK[dst] == RANK[src]:
            problems.append(f"{rel}:{number}: {text}: {src} and {dst} are independent layers "
                            f"(both layer {RANK[src] + 1}) and may not include each other")
    for p in problems:
        print(p)
    order = " < ".join("{" + ", ".join(line) + "}" if len(line) > 1 else line[0] for line in LAYERS)
    print(f"layering: {len(files)} files checked against {order}; {len(problems)} problem(s)")
    return 1 if problems else 0


def graph(root):
    counts = {}
    for _, _, _, src, dst in edges(root):
        counts[(src, dst)] = counts.get((src, dst), 0) + 1
    for (src, dst), n in sorted(counts.items()):
        print(f"{src} -> {dst}: {n}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--graph":
        sys.exit(graph(args[1]))
    if len(args) != 1:
        sys.exit(__doc__)
    sys.exit(check(args[0]))

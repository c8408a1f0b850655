#!/usr/bin/env python3
"""The 732M MoE and AoE models written in PyTorch as a user would, timed like autonomoe-bench.

    python3 bench/torch_moe.py --config configs/paper/t2_r10_aoe_dlow256_aux.yaml \
        [--autonomoe build/autonomoe] [--set key=value]... [--steps 10] [--warmup 3]
        [--modes eager,compile] [--count-only] [--smoke] [--json FILE] [--peak-tflops 989]

What a PyTorch user would write for the project's config: RMSNorm, RoPE (rotate-half), attention
through scaled_dot_product_attention (causal; k/v heads repeated for GQA), experts as stacked
weights run one by one after a sort-based dispatch (argsort of the expert ids, bincount, .tolist()
for the split sizes, gather, index_add_ to combine), a router (top-k of the logits, softmax over
the selected) or AoE's factorised gate (W_g = W_down W_up: one GEMM x W_down for every expert, the
L2 norm of each expert's d_low block as its score, softmax over the k selected norms, and the
selected experts reuse their cached block), the load-balancing loss alpha n sum_i f_i P_i, bf16
autocast with fp32 weights, AdamW(fused=True) and torch.compile. Data: random tokens, one
micro-batch per optimizer step, as autonomoe-bench.

The config is the project's own: `autonomoe validate --config X --set ...` prints every resolved
key (extends: and defaults applied) and the project's parameter counts; this script reads that
output, so the two cannot drift. Before anything runs it CHECKS that its model's parameters
(total, and active per token counted the project's way: embedding twice, k whole experts) and its
FLOPs per token equal the project's, and exits 3 if not. FLOPs per token are docs/benchmarks.md's:
6 * (active - V d) + 6 L T H hd; MFU = FLOPs/token * tokens/s / peak.

--modes eager,compile measures both in turn on one model (default: compile; the first steps of a
mode are its warm-up, and what they take beyond steady-state steps is reported as compile time).
--smoke: 1 layer, sequence 64, micro-batch 2, 2 steps (a CPU check). --count-only: build the
model on the meta device, check the counts, exit. Without CUDA it runs on the CPU; on a PyTorch
older than 2.0 (no torch.compile, no scaled_dot_product_attention) it says so and runs without.
"""
import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the project's config, through `autonomoe validate` -------------------------------------

def find_autonomoe(given):
    cands = [given, os.environ.get("AM_AUTONOMOE")] + [
        os.path.join(ROOT, b, "autonomoe") for b in ("build", "build-cpu", "build-device", "build-sim")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("torch_moe: no autonomoe binary found: pass --autonomoe PATH (or set AM_AUTONOMOE)")


def project_config(binary, config, sets):
    """Every resolved key of the config, and the project's parameter counts."""
    cmd = [binary, "validate", "--config", config] + [a for s in sets for a in ("--set", s)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("torch_moe: %s failed:\n%s%s" % (" ".join(cmd), out.stdout, out.stderr))
    keys, params = {}, None
    lines = out.stdout.splitlines()
    for line in lines[1:]:  # the first line is the header "key value source"
        if not line.strip():
            break
        f = line.split()
        keys[f[0]] = " ".join(f[1:-1])
    for line in lines:
        if line.startswith("parameters:"):
            w = line.replace(",", "").split()
            params = (int(w[1]), int(w[3]))
    if params is None or "model.d_model" not in keys:
        sys.exit("torch_moe: could not read the output of %s:\n%s" % (" ".join(cmd), out.stdout))
    return keys, params


class Cfg:
    """The keys this script uses, with the project's derived sizes (head_dim, kv heads, d_wide)."""

    def __init__(self, k):
        want = {"model.moe.selector.type": "topk", "model.moe.selector.n_null": "0",
                "model.moe.selector.capacity_factor": "0.0", "model.moe.aux.z_loss": "0.0",
                "model.moe.aux.entropy": "0.0", "model.moe.aux.bias_update_rate": "0.0"}
        if k["model.moe.scorer.type"] == "act_norm":
            want.update({"model.moe.scorer.node": "latent", "model.moe.scorer.norm": "l2",
                         "model.moe.expert.type": "factorized"})
        else:
            want.update({"model.moe.scorer.type": "router", "model.moe.expert.type": "swiglu"})
        for key, v in want.items():
            if k[key] != v:
                sys.exit("torch_moe: %s is %s; this script writes only the top-k router MoE and AoE "
                         "(latent L2) models, without z-loss, entropy, capacity or null experts (wants %s)"
                         % (key, k[key], v))
        if k["model.moe.aux.load_balance"].startswith("["):
            sys.exit("torch_moe: model.moe.aux.load_balance is a schedule; this script takes a constant")
        i = lambda key: int(k[key])
        self.V, self.d, self.L, self.H = i("model.vocab_size"), i("model.d_model"), i("model.n_layers"), i("model.n_heads")
        self.KV = i("model.n_kv_heads") or self.H
        self.hd = self.d // self.H
        self.T, self.B = i("data.seq_len"), i("train.micro_batch_size")
        self.theta, self.eps, self.std = float(k["model.rope_theta"]), float(k["model.norm_eps"]), float(k["model.init_std"])
        self.tied = k["model.tie_embeddings"] == "true"
        self.n, self.k = i("model.moe.n_experts"), i("model.moe.selector.k")
        self.aoe = k["model.moe.scorer.type"] == "act_norm"
        self.low = i("model.moe.expert.d_low")
        self.width = self.hidden_width(k)
        self.alpha = float(k["model.moe.aux.load_balance"])
        self.lr, self.wd, self.clip = float(k["train.lr"]), float(k["train.weight_decay"]), float(k["train.grad_clip"])
        self.betas, self.adam_eps = (float(k["train.beta1"]), float(k["train.beta2"])), float(k["train.eps"])
        self.bf16 = k["run.precision"] == "bf16"

    @staticmethod
    def hidden_width(k):  # MoeConfig::hidden_width (AoE Eq. 5), std::llround included
        if k["model.moe.expert.type"] != "factorized":
            return int(k["model.moe.d_ffn"])
        if int(k["model.moe.expert.d_wide"]) > 0:
            return int(k["model.moe.expert.d_wide"])
        d, f, low = float(k["model.d_model"]), float(k["model.moe.d_ffn"]), float(k["model.moe.expert.d_low"])
        m = max(int(k["model.moe.expert.multiple_of"]), 1)
        return int(math.floor(math.floor((3 * d * f - low * d) / (low + 2 * d) + 0.5) / m + 0.5) * m)


# ---- the model, as a user would write it -----------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, d, eps, device):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d, device=device))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope_tables(T, hd, theta, device):
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd)
    f = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv)
    f = torch.cat([f, f], dim=-1)  # rotate-half layout (HF Llama)
    return f.cos(), f.sin()


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat([-x2, x1], dim=-1) * sin).to(x.dtype)


def causal_attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # PyTorch < 2.0 (the CPU check here only): the same math.
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return s.float().softmax(-1).to(v.dtype) @ v


class Attention(nn.Module):
    def __init__(self, c, device):
        super().__init__()
        self.c = c
        self.qkv = nn.Linear(c.d, (c.H + 2 * c.KV) * c.hd, bias=False, device=device)
        self.o = nn.Linear(c.H * c.hd, c.d, bias=False, device=device)

    def forward(self, x, cos, sin):
        c, (B, T, _) = self.c, x.shape
        q, k, v = self.qkv(x).split([c.H * c.hd, c.KV * c.hd, c.KV * c.hd], dim=-1)
        q, k, v = (t.view(B, T, -1, c.hd).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if c.KV != c.H:
            k, v = k.repeat_interleave(c.H // c.KV, dim=1), v.repeat_interleave(c.H // c.KV, dim=1)
        return self.o(causal_attention(q, k, v).transpose(1, 2).reshape(B, T, c.H * c.hd))


class MoE(nn.Module):
    """n SwiGLU experts (stacked [n, out, in] weights), a router or AoE's factorised gate."""

    def __init__(self, c, device):
        super().__init__()
        self.c = c
        w = lambda *shape: nn.Parameter(torch.empty(*shape, device=device))
        if c.aoe:  # W_g = W_down W_up; all experts' W_down together: AoE's one scoring GEMM
            self.router = None
            self.experts = nn.ParameterDict({"w1_down": w(c.n * c.low, c.d), "w1_up": w(c.n, c.width, c.low)})
        else:
            self.router = w(c.n, c.d)
            self.experts = nn.ParameterDict({"w1": w(c.n, c.width, c.d)})
        self.experts["w3"] = w(c.n, c.width, c.d)
        self.experts["w2"] = w(c.n, c.d, c.width)

    def forward(self, x):  # x: (N, d)
        c, ex, N = self.c, self.experts, x.shape[0]
        if c.aoe:
            latent = F.linear(x, ex["w1_down"]).view(N, c.n, c.low)  # cached for the selected experts
            scores = latent.float().norm(dim=-1)                      # ||x W_down^i||_2
        else:
            scores = F.linear(x, self.router).float()                 # logits
        top, ids = scores.topk(c.k, dim=-1)
        gates = top.softmax(-1)  # router: renormalised top-k probabilities; AoE: softmax of the k norms
        flat = ids.flatten()
        counts = torch.bincount(flat, minlength=c.n)
        aux = c.alpha * c.n * (counts.float().detach() / N * scores.softmax(-1).mean(0)).sum()
        # Sort-based dispatch: rows grouped by expert, one GEMM chain per expert.
        _, order = torch.sort(flat, stable=True)
        tok = order // c.k
        xs = x[tok]
        if c.aoe:
            lat = latent[tok, flat[order]]
        outs, start = [], 0
        for e, m in enumerate(counts.tolist()):
            xe = xs[start:start + m]
            g = F.linear(lat[start:start + m], ex["w1_up"][e]) if c.aoe else F.linear(xe, ex["w1"][e])
            outs.append(F.linear(F.silu(g) * F.linear(xe, ex["w3"][e]), ex["w2"][e]))
            start += m
        ys = torch.cat(outs) * gates.flatten()[order].unsqueeze(1)
        return torch.zeros(N, c.d, device=x.device, dtype=ys.dtype).index_add_(0, tok, ys), aux


class Block(nn.Module):
    def __init__(self, c, device):
        super().__init__()
        self.norm1, self.attn = RMSNorm(c.d, c.eps, device), Attention(c, device)
        self.norm2, self.moe = RMSNorm(c.d, c.eps, device), MoE(c, device)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        y, aux = self.moe(self.norm2(x).flatten(0, 1))
        return x + y.view_as(x), aux


class Model(nn.Module):
    def __init__(self, c, device):
        super().__init__()
        self.c = c
        self.emb = nn.Embedding(c.V, c.d, device=device)
        self.blocks = nn.ModuleList(Block(c, device) for _ in range(c.L))
        self.norm = RMSNorm(c.d, c.eps, device)
        self.head = None if c.tied else nn.Linear(c.d, c.V, bias=False, device=device)
        cos, sin = rope_tables(c.T, c.hd, c.theta, device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():  # normal(0, std); output projections / sqrt(2 L)
            if p.dim() >= 2:
                scale = 1 / math.sqrt(2 * c.L) if name.endswith(("o.weight", "w2")) else 1.0
                nn.init.normal_(p, 0.0, c.std * scale)

    def forward(self, tokens, targets):
        x, aux = self.emb(tokens), 0.0
        for b in self.blocks:
            x, a = b(x, self.cos, self.sin)
            aux = aux + a
        h = self.norm(x)
        logits = F.linear(h, self.emb.weight if self.head is None else self.head.weight)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()) + aux


# ---- counts, checked against the project's ---------------------------------------------------

def counts(model, c):
    """(total, active per token, FLOPs per token), counted on this model the project's way."""
    total = sum(p.numel() for p in model.parameters())
    active = 2 * model.emb.weight.numel() + model.norm.weight.numel()  # embedding as input and head
    for b in model.blocks:
        expert = sum(p.numel() for p in b.moe.experts.values())
        shared = sum(p.numel() for p in b.parameters()) - expert
        active += shared + c.k * expert // c.n
    return total, active, flops_per_token(c, active)


def flops_per_token(c, active):  # docs/benchmarks.md, bench/bench_train.cpp
    return 6 * (active - c.V * c.d) + 6 * c.L * c.T * c.H * c.hd


def check_counts(model, c, project):
    mine = counts(model, c)
    theirs = (project[0], project[1], flops_per_token(c, project[1]))
    for what, a, b in zip(("parameters (total)", "parameters (active per token)", "FLOPs per token"), mine, theirs):
        print("check %-30s pytorch %16d  autonomoe %16d  %s" % (what, a, b, "equal" if a == b else "DIFFERENT"))
    if mine != theirs:
        print("torch_moe: FAILED: the PyTorch model does not have the project's size; its numbers "
              "would compare different models", file=sys.stderr)
        sys.exit(3)
    return mine


# ---- the benchmark ---------------------------------------------------------------------------

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(args, c, project, device):
    """Builds the model once, then measures each mode in turn (eager, compile), one result each."""
    torch.manual_seed(1234)
    model = Model(c, device)
    _, _, fpt = check_counts(model, c, project)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, betas=c.betas, eps=c.adam_eps, weight_decay=c.wd, **fused)
    g = torch.Generator(device="cpu").manual_seed(1234)
    tokens = torch.randint(0, c.V, (c.B, c.T), generator=g).to(device)
    targets = torch.randint(0, c.V, (c.B, c.T), generator=g).to(device)
    dtype = torch.bfloat16 if c.bf16 else torch.float32

    def step(m):
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=c.bf16):
            loss = m(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for mode in args.modes.split(","):
        compiled, note = model, "eager"
        if mode == "compile" and hasattr(torch, "compile"):
            # The split sizes (.tolist()) break the graph and change every step: Dynamo recompiles
            # once with them dynamic; the higher limit keeps 12 layers from falling back to eager.
            dynamo = importlib.import_module("torch._dynamo")
            for limit in ("recompile_limit", "cache_size_limit"):
                if hasattr(dynamo.config, limit):
                    setattr(dynamo.config, limit, 64)
                    break
            compiled, note = torch.compile(model), "torch.compile"
        elif mode == "compile":
            if "eager" in args.modes.split(","):
                continue
            note = "eager (torch %s has no torch.compile)" % torch.__version__
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times, losses = [], []
        for s in range(args.warmup + args.steps):
            sync(device)
            t0 = time.perf_counter()
            try:
                loss = step(compiled)
            except Exception as e:  # a compile failure: say so, and measure eager instead
                if compiled is model:
                    raise
                print("torch_moe: torch.compile failed (%s: %s); measuring eager" % (type(e).__name__, e), flush=True)
                compiled, note = model, "eager (torch.compile failed: %s)" % type(e).__name__
                loss = step(compiled)
            sync(device)
            times.append(time.perf_counter() - t0)
            losses.append(float(loss))
            print("%s step %d: %.3f s, loss %.4f" % (mode, s, times[-1], losses[-1]), flush=True)
        report(args, c, project, fpt, device, note, times, losses)


def report(args, c, project, fpt, device, note, times, losses):
    steady = sorted(times[args.warmup:])
    median = steady[len(steady) // 2]
    tps = c.B * c.T / median
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    r = {"impl": "pytorch", "config": args.config, "sets": args.set, "backend": "%s, torch %s, %s, %s" % (
             device.type, torch.__version__, "bf16 autocast" if c.bf16 else "fp32", note),
         "mode": note, "micro_batch": c.B, "seq_len": c.T, "steps": args.steps, "warmup": args.warmup,
         "step_ms": [1000 * t for t in times[args.warmup:]], "median_step_ms": 1000 * median,
         "tokens_per_s": tps, "params_total": project[0], "params_active": project[1],
         "flops_per_token": fpt, "peak_tflops": args.peak_tflops, "mfu": fpt * tps / (args.peak_tflops * 1e12),
         "peak_memory_bytes": peak, "first_step_s": times[0], "warmup_s": sum(times[:args.warmup]),
         "compile_s": sum(times[:args.warmup]) - args.warmup * median, "losses": losses}
    print("%s | %s | B=%d T=%d | median step %.2f ms (%d steps, %d warm-up) | %.0f tokens/s | %.3g GFLOP/token | "
          "MFU %.2f%% of %.0f TFLOP/s | peak memory %s | first step %.1f s, warm-up beyond steady steps "
          "(compile) %.1f s" % (args.config, r["backend"], c.B, c.T, r["median_step_ms"], args.steps, args.warmup,
                                tps, fpt / 1e9, 100 * r["mfu"], args.peak_tflops,
                                "%.2f GiB" % (peak / 2**30) if peak is not None else "n/a (CPU)",
                                times[0], r["compile_s"]), flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(r) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], help="key=value, as autonomoe's --set")
    p.add_argument("--autonomoe", help="the autonomoe binary (default: $AM_AUTONOMOE, build*/autonomoe)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--modes", default="compile", help="comma-separated, measured in turn: eager, compile")
    p.add_argument("--count-only", action="store_true", help="check the counts on the meta device, then exit")
    p.add_argument("--smoke", action="store_true", help="1 layer, sequence 64, micro-batch 2, 2 steps")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--json", help="append the result here as one JSON line")
    args = p.parse_args()
    if args.smoke:
        args.set += ["model.n_layers=1", "data.seq_len=64", "model.max_seq_len=64", "train.micro_batch_size=2"]
        args.steps, args.warmup = 2, 1
    if any(m not in ("eager", "compile") for m in args.modes.split(",")):
        p.error("--modes: eager and/or compile, comma-separated")
    keys, project = project_config(find_autonomoe(args.autonomoe), args.config, args.set)
    c = Cfg(keys)
    print("config %s%s: %s, d %d, %d layers, %d heads (kv %d), %d experts top-%d of width %d%s, aux %g, B %d x T %d" % (
        args.config, " " + " ".join(args.set) if args.set else "", "AoE" if c.aoe else "MoE", c.d, c.L, c.H, c.KV,
        c.n, c.k, c.width, ", d_low %d" % c.low if c.aoe else "", c.alpha, c.B, c.T), flush=True)
    if args.count_only:
        check_counts(Model(c, torch.device("meta")), c, project)
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run(args, c, project, device)


if __name__ == "__main__":
    main()

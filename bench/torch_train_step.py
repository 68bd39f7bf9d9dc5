#!/usr/bin/env python3
"""PyTorch CPU baseline for `ssm_train --model mamba` (issue 14, Benchmarks).

Times the same training step as the C demo, in float32 on the CPU: token
embedding E [Vp][Dm] -> 2 pre-norm residual Mamba blocks (RMSNorm, then
mamba_ssm's Mamba mixer) -> final RMSNorm -> head tied to E (logits over the
V real tokens) -> cross-entropy on the answer positions of selective copying
-> backward -> global-norm clipping at 1 -> AdamW (lr 0.01, betas 0.9/0.999,
eps 1e-8, no weight decay).  Sizes are the demo's defaults: d_model 32,
2 layers, d_state 16, d_conv 4, expand 2, dt_rank 2, batch 16, context 16 +
3 copies (T = 19 tokens per sequence), vocabulary 8 values + 2 = 10 (16 rows).

The mixer follows mamba_ssm's reference semantics (Mamba.forward's slow path
with selective_scan_ref, the path mamba_ssm takes without CUDA): in_proj,
causal depthwise conv1d + SiLU, x_proj -> (dt, B, C), dt_proj + softplus,
h_t = exp(dt A) h_{t-1} + dt B_t x_t, y_t = C_t h_t + D x_t, gated by
SiLU(z), out_proj.  Written here with torch ops (not mamba_ssm's code).

Run by hand (not in CI), with Debian's torch (apt-get install python3-torch):
    /usr/bin/python3 bench/torch_train_step.py [--steps 20] [--repeats 5]
Prints, for 1 and 2 threads, the median step time over the repeats and
tokens/s = batch * T / step time (the demo's tokens/s definition).
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.w


class Mixer(nn.Module):
    def __init__(self, dm, n, k, expand):
        super().__init__()
        di, r = expand * dm, math.ceil(dm / 16)
        self.di, self.n, self.k, self.r = di, n, k, r
        self.in_proj = nn.Linear(dm, 2 * di, bias=False)
        self.conv = nn.Conv1d(di, di, k, groups=di, padding=k - 1, bias=True)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=True)
        # Mamba's dt init: dt log-uniform in [1e-3, 1e-1], bias = softplus^-1(dt)
        dt = torch.exp(torch.rand(di) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, dm, bias=False)

    def forward(self, h):
        b, l, _ = h.shape
        x, z = self.in_proj(h).chunk(2, dim=-1)                # (b, l, di) each
        x = F.silu(self.conv(x.transpose(1, 2))[..., :l])     # causal: first l outputs
        x = x.transpose(1, 2)                                  # (b, l, di)
        dt, B, C = torch.split(self.x_proj(x), [self.r, self.n, self.n], dim=-1)
        dt = F.softplus(self.dt_proj(dt))                      # (b, l, di)
        A = -torch.exp(self.A_log)                             # (di, n)
        dA = torch.exp(dt.unsqueeze(-1) * A)                   # (b, l, di, n)
        dBx = (dt * x).unsqueeze(-1) * B.unsqueeze(2)          # (b, l, di, n)
        s = x.new_zeros(b, self.di, self.n)
        ys = []
        for t in range(l):                                     # the selective scan
            s = dA[:, t] * s + dBx[:, t]
            ys.append(torch.einsum("bdn,bn->bd", s, C[:, t]))
        y = torch.stack(ys, dim=1) + x * self.D
        return self.out_proj(y * F.silu(z))


class LM(nn.Module):
    def __init__(self, V, Vp, dm, layers, n, k, expand):
        super().__init__()
        self.V = V
        self.E = nn.Parameter(0.02 * torch.randn(Vp, dm))
        self.norms = nn.ModuleList(RMSNorm(dm) for _ in range(layers))
        self.mixers = nn.ModuleList(Mixer(dm, n, k, expand) for _ in range(layers))
        self.norm_f = RMSNorm(dm)

    def forward(self, tok):
        h = F.embedding(tok, self.E)
        for nrm, mix in zip(self.norms, self.mixers):
            h = h + mix(nrm(h))
        return F.linear(self.norm_f(h), self.E[: self.V])      # tied head, real vocab


def sc_batch(g, batch, ctx, copies, nvals):
    """Selective copying as the demo: noise 0, markers 1, data 2..nvals+1."""
    T = ctx + copies
    tok = torch.zeros(batch, T, dtype=torch.long)
    tok[:, ctx:] = 1
    tgt = torch.full((batch, T), -1, dtype=torch.long)
    for b in range(batch):
        pos = torch.randperm(ctx, generator=g)[:copies].sort().values
        val = torch.randint(2, 2 + nvals, (copies,), generator=g)
        tok[b, pos] = val
        tgt[b, ctx:] = val
    return tok, tgt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    dm, layers, n, k, expand, batch, ctx, copies, nvals = 32, 2, 16, 4, 2, 16, 16, 3, 8
    V = nvals + 2
    Vp = (V + 7) // 8 * 8
    T = ctx + copies
    print("torch %s, float32, CPU; d_model %d, %d layers, d_state %d, batch %d, T %d, vocab %d"
          % (torch.__version__, dm, layers, n, batch, T, V))
    for th in [int(s) for s in a.threads.split(",")]:
        torch.set_num_threads(th)
        torch.manual_seed(1)
        g = torch.Generator().manual_seed(1)
        model = LM(V, Vp, dm, layers, n, k, expand)
        opt = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=0.0)
        batches = [sc_batch(g, batch, ctx, copies, nvals) for _ in range(a.steps)]

        def step(tok, tgt):
            opt.zero_grad(set_to_none=True)
            logits = model(tok)
            loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=-1)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss.item()

        for tok, tgt in batches[:3]:                           # warm-up
            step(tok, tgt)
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for tok, tgt in batches:
                loss = step(tok, tgt)
            times.append((time.perf_counter() - t0) / a.steps)
        med = statistics.median(times)
        print("threads %d: median step %.3f ms (min %.3f, max %.3f over %d repeats of %d steps), "
              "%.0f tokens/s, loss %.3f"
              % (th, 1e3 * med, 1e3 * min(times), 1e3 * max(times), a.repeats, a.steps,
                 batch * T / med, loss))


if __name__ == "__main__":
    main()

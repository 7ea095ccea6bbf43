"""The velocity U-Net in PyTorch, built from sia's own block description (JSON), so both sides
run the same network: training steps/s (interpolant regression: x_t = (1 - t) x0 + t x1, velocity
target x1 - x0, MSE, Adam) and ODE sampling samples/s (Euler, a fixed number of steps, no grad).

    python3 unet_torch.py --blocks unet.json --shape 1,28,28 --batch 64 --threads 2 \
        --steps 10 --repeats 3 [--channels-last] [--sample-steps 20]

Prints "train: R steps/s" and "sample: R samples/s" (medians over repeats, min and max beside).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Seq(nn.Module):
    """A block list: what sia's walk does, with the skip stack and the time embedding."""

    def __init__(self, blocks, cin, features=None):
        super().__init__()
        self.blocks = blocks
        self.mods = nn.ModuleList()
        c = cin
        skips = []
        for b in blocks:
            kind = b["kind"]
            m = None
            if kind == "conv":
                pad = 0 if b.get("padding") == "valid" else (b["kernel"] - 1) // 2
                m = nn.Conv2d(c, b["out"], b["kernel"], b["stride"], pad, bias=b["bias"])
                c = b["out"]
            elif kind == "groupnorm":
                m = nn.GroupNorm(b["groups"], c, eps=1e-5)
            elif kind == "dense":
                m = nn.Linear(c, b["out"], bias=b["bias"])
                c = b["out"]
            elif kind == "cond":
                m = nn.Linear(b["embed"], c)
            elif kind == "embed":
                m = Seq(b["body"], b["features"])
                half = b["features"] // 2
                freqs = torch.exp(torch.arange(half) * (math.log(1000) / max(1, half - 1)))
                self.register_buffer("freqs", freqs.float())
            elif kind == "residual":
                m = nn.ModuleList([Seq(b["body"], c), Seq(b["shortcut"], c)])
                c = m[0].cout if b["body"] else c
            elif kind == "push":
                skips.append(c)
            elif kind == "concat":
                c += skips.pop()
            self.mods.append(m if m is not None else nn.Identity())
        self.cout = c

    def forward(self, x, ctx):
        for b, m in zip(self.blocks, self.mods):
            kind = b["kind"]
            if kind in ("conv", "groupnorm", "dense"):
                x = m(x)
            elif kind == "silu":
                x = F.silu(x)
            elif kind == "upsample":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            elif kind == "push":
                ctx["skips"].append(x)
            elif kind == "concat":
                x = torch.cat([x, ctx["skips"].pop()], 1)
            elif kind == "embed":
                angles = ctx["t"][:, None] * self.freqs[None, :]
                ctx["embedding"] = m(torch.cat([angles.sin(), angles.cos()], 1), ctx)
            elif kind == "cond":
                x = x + m(ctx["embedding"])[:, :, None, None]
            elif kind == "residual":
                x = m[0](x, ctx) + m[1](x, ctx)
        return x


class Unet(nn.Module):
    def __init__(self, blocks, channels):
        super().__init__()
        self.net = Seq(blocks, channels)

    def forward(self, x, t):
        return self.net(x, {"t": t, "skips": []})


def timed(fn, steps, repeats):
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        walls.append(time.perf_counter() - t0)
    return walls


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", required=True)
    p.add_argument("--shape", default="1,28,28")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, h, w = map(int, a.shape.split(","))
    model = Unet(json.load(open(a.blocks)), c)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x1 = torch.rand(a.batch, c, h, w).mul(2).sub(1).contiguous(memory_format=fmt)

    def train_step():
        x0 = torch.randn_like(x1)
        t = torch.rand(a.batch)
        xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
        loss = F.mse_loss(model(xt, t), x1 - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sample():
        with torch.inference_mode():
            x = torch.randn(a.batch, c, h, w).contiguous(memory_format=fmt)
            dt = 1.0 / a.sample_steps
            for k in range(a.sample_steps):
                x = x + dt * model(x, torch.full((a.batch,), k * dt))

    for _ in range(2):
        train_step()
    train = [a.steps / s for s in timed(train_step, a.steps, a.repeats)]
    sample()
    samples = [a.batch / s for s in timed(sample, 1, a.repeats)]
    params = sum(p.numel() for p in model.parameters())
    print(f"params: {params}")
    print(f"train: {statistics.median(train):.3f} steps/s (min {min(train):.3f} max {max(train):.3f})")
    print(f"sample: {statistics.median(samples):.2f} samples/s (min {min(samples):.2f} max {max(samples):.2f})")


if __name__ == "__main__":
    main()

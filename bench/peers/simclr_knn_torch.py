"""SimCLR's effect on the kNN and linear probes, in PyTorch: the cross-check of bench/learners.ts
(sia's learners-30 benchmark) and of Table 3's SimCLR baseline cell (bench/table3_peer.ts), same
data files, same protocol.

Data: --data DIR holds train_x.f32 ([n, 28, 28] float32 on [0, 1]), train_y.i32, test_x.f32,
test_y.i32, written by the bench; with probe_x.f32 and probe_y.i32 there too, the probes fit on
those (Table 3: a subset of the training images) instead of train_x. Model: the peers' small CNN (conv 32-64-128 + BN + ReLU,
pooling, global average, 128-d) with a projection head Linear(128, dim) + ReLU + Linear(dim, dim).
Views: torchvision, solo-learn's symmetric strong recipe (crop (0.08, 1), flip, jitter
(0.8, 0.8, 0.8, 0.2) p 0.8, blur p 0.5). NT-Xent tau 0.5, SGD momentum 0.9, weight decay 1e-5,
linear warm-up then cosine. Probes on the encoder in eval mode: weighted kNN (cosine, k 200,
T 0.1), a ridge linear probe on standardised features (lambda picked on a held-out fifth), and
multinomial logistic regression on the same standardised features (float64, L-BFGS with strong
Wolfe line search to a gradient of 1e-6, L2 strength from 1e-2, 1e-3, 1e-4 picked on a seeded 10 %
hold-out, the largest on ties, then refitted on all: sia's logistic probe, with its own split).
Prints one JSON line per probe: {"seed", "step", "knn", "linear", "logistic"}.

usage: /usr/bin/python3 simclr_knn_torch.py --data DIR [--steps 30] [--batch 64] [--lr 0.05]
       [--warmup 5] [--dim 64] [--weight-decay 1e-5] [--seeds 0,1,2] [--probe-at 30]
"""
import os
import argparse
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--steps", type=int, default=30)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--warmup", type=int, default=5)
ap.add_argument("--dim", type=int, default=64)
ap.add_argument("--seeds", default="0,1,2")
ap.add_argument("--probe-at", default="")
ap.add_argument("--weight-decay", type=float, default=1e-5)
args = ap.parse_args()
torch.set_num_threads(2)


def load(name, dtype, shape):
    return torch.from_numpy(np.fromfile(f"{args.data}/{name}", dtype).reshape(shape))


train_x = load("train_x.f32", np.float32, (-1, 1, 28, 28))
train_y = load("train_y.i32", np.int32, (-1,)).long()
test_x = load("test_x.f32", np.float32, (-1, 1, 28, 28))
test_y = load("test_y.i32", np.int32, (-1,)).long()
if os.path.exists(f"{args.data}/probe_x.f32"):
    probe_x = load("probe_x.f32", np.float32, (-1, 1, 28, 28))
    probe_y = load("probe_y.i32", np.int32, (-1,)).long()
else:
    probe_x, probe_y = train_x, train_y
classes = int(max(probe_y.max(), test_y.max())) + 1
views = T.Compose([
    T.RandomResizedCrop(28, scale=(0.08, 1)),
    T.RandomHorizontalFlip(),
    T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
    T.RandomApply([T.GaussianBlur(3, (0.1, 2))], p=0.5),
])


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def knn(a, ya, b, yb, k=200, t=0.1):
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    sim, idx = (b @ a.t()).topk(min(k, len(a)), dim=1)
    votes = torch.zeros(len(b), classes).scatter_add_(1, ya[idx], (sim / t).exp())
    return (votes.argmax(1) == yb).double().mean().item()


def linear(a, ya, b, yb):
    mean, std = a.mean(0), a.std(0, unbiased=False)
    std[std == 0] = 1
    za = ((a - mean) / std).double()
    zb = ((b - mean) / std).double()
    onehot = F.one_hot(ya, classes).double()
    fit = torch.arange(len(za)) % 5 != 0

    def solve(z, y, lam):
        z1 = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1)
        g = z1.t() @ z1 + lam * len(z1) * torch.eye(z1.shape[1], dtype=z.dtype)
        return torch.linalg.solve(g, z1.t() @ y)

    def acc(w, z, y):
        return (torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1) @ w).argmax(1).eq(y).double().mean().item()

    best = max([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1],
               key=lambda lam: acc(solve(za[fit], onehot[fit], lam), za[~fit], ya[~fit]))
    return acc(solve(za, onehot, best), zb, yb)


def logistic(a, ya, b, yb):
    mean, std = a.mean(0), a.std(0, unbiased=False)
    std[std == 0] = 1
    ones = lambda z: torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1)
    za, zb = ones(((a - mean) / std).double()), ones(((b - mean) / std).double())
    n = len(za)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    hold, fit = perm[:round(0.1 * n)], perm[round(0.1 * n):]

    def solve(z, y, lam):
        w = torch.zeros(z.shape[1], classes, dtype=z.dtype, requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=1, max_iter=1000, tolerance_grad=1e-6,
                                tolerance_change=1e-12, history_size=10,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(z @ w, y) + 0.5 * lam * (w[:-1] ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return w.detach()

    def acc(w, z, y):
        return (z @ w).argmax(1).eq(y).double().mean().item()

    # max keeps the first of equal accuracies: the grid is descending, so the largest lambda.
    best = max([1e-2, 1e-3, 1e-4],
               key=lambda lam: acc(solve(za[fit], ya[fit], lam), za[hold], ya[hold]))
    return acc(solve(za, ya, best), zb, yb)


def probe(enc):
    enc.eval()
    with torch.no_grad():
        a, b = enc(probe_x), enc(test_x)
    enc.train()
    return knn(a, probe_y, b, test_y), linear(a, probe_y, b, test_y), logistic(a, probe_y, b, test_y)


probe_at = {int(s) for s in args.probe_at.split(",") if s} | {args.steps}
for seed in [int(s) for s in args.seeds.split(",")]:
    torch.manual_seed(seed)
    enc = nn.Sequential(*conv_bn(1, 32), nn.MaxPool2d(2), *conv_bn(32, 64), nn.MaxPool2d(2),
                        *conv_bn(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head = nn.Sequential(nn.Linear(128, args.dim), nn.ReLU(), nn.Linear(args.dim, args.dim))
    k, l, r = probe(enc)
    print(json.dumps({"seed": seed, "step": 0, "knn": k, "linear": l, "logistic": r}), flush=True)
    opt = torch.optim.SGD(list(enc.parameters()) + list(head.parameters()), lr=args.lr,
                          momentum=0.9, weight_decay=args.weight_decay)
    g = torch.Generator().manual_seed(seed)
    B = args.batch
    for step in range(args.steps):
        x = train_x[torch.randint(0, len(train_x), (B,), generator=g)]
        v = torch.cat([torch.stack([views(im) for im in x]), torch.stack([views(im) for im in x])])
        w = args.warmup
        lr = args.lr * (step + 1) / w if step < w else \
            args.lr * 0.5 * (1 + math.cos(math.pi * min(1, (step - w) / max(1, args.steps - w))))
        for group in opt.param_groups:
            group["lr"] = lr
        z = F.normalize(head(enc(v)), dim=1)
        sim = z @ z.t() / 0.5
        sim.fill_diagonal_(float("-inf"))
        loss = F.cross_entropy(sim, torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step + 1 in probe_at:
            k, l, r = probe(enc)
            print(json.dumps({"seed": seed, "step": step + 1, "knn": k, "linear": l,
                              "logistic": r, "loss": loss.item()}), flush=True)

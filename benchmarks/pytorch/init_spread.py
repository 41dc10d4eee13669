#!/usr/bin/env python3
"""How alive a 3D ResNet is at initialisation, on mostly-background volumes: the measurement
behind mc_train's model.zero_init_last default (README "Initialisation").

For each volume size, zero_init_last on / off and plain / average-pool shortcuts (timm's
avg_down: AvgPool3d(2, stride 2, ceil_mode, count_include_pad=False) before the 1x1x1 conv, the
Table II "t" ResNets' shortcut), it builds the network of tests/fixtures/resnet3d_torch.py with
timm's init (kaiming-normal fan_out convolutions, BN 1 / 0, the last BN of each block zeroed when
zero_init_last), runs one batch of generated volumes (one solid ellipsoid of value 1 near the
centre, background 0, as tests/pipeline/sparse_data.h) in train mode in float64, and prints the
largest per-feature standard deviation of the pooled features across the batch (0: every
volume gives the same features, a dead start). With --train N it also trains N AdamW steps
(lr 1e-3, cross-entropy, 3 shape classes) and prints the mean loss of the last 5.

  init_spread.py [--model resnet10] [--sizes 28,32,48,64,96,128] [--batch 8] [--train 0]
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures"))
from resnet3d_torch import ResNet3d  # noqa: E402


def volumes(n, side, rng):
    x = np.zeros((n, 1, side, side, side))
    y = np.zeros(n, dtype=np.int64)
    g = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij")).astype(float)
    for i in range(n):
        u = rng.uniform()
        label = 0 if u < 0.6 else 1 if u < 0.85 else 2
        r = side * (0.12 + 0.08 * rng.uniform()) * (0.9 + 0.2 * rng.uniform(size=3))
        axis = rng.integers(3)
        r[axis] *= (1.8 + 0.4 * rng.uniform()) if label == 1 else (0.4 + 0.1 * rng.uniform()) if label == 2 else 1
        c = (side - 1) / 2 + (rng.uniform(size=3) - 0.5) * side * 0.2
        q = sum(((g[k] - c[k]) / r[k]) ** 2 for k in range(3))
        x[i, 0][q <= 1] = 1
        y[i] = label
    return torch.from_numpy(x), torch.from_numpy(y)


def build(name, zero_init_last, avg_down, seed):
    torch.manual_seed(seed)
    m = ResNet3d(name, 1, 3)
    if avg_down:
        for layer in (m.layer2, m.layer3, m.layer4):
            d = layer[0].downsample
            conv = d[0]
            d[0] = nn.Conv3d(conv.in_channels, conv.out_channels, 1, 1, bias=False)
            layer[0].downsample = nn.Sequential(
                nn.AvgPool3d(2, 2, ceil_mode=True, count_include_pad=False), d[0], d[1])
    for mod in m.modules():
        if isinstance(mod, nn.Conv3d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm3d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
    if zero_init_last:
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            for block in layer:
                nn.init.zeros_((block.bn3 if hasattr(block, "bn3") else block.bn2).weight)
    return m.double()


def pooled(m, x):
    h = m.maxpool(m.act1(m.bn1(m.conv1(x))))
    for i in range(1, 5):
        h = getattr(m, f"layer{i}")(h)
    return torch.flatten(m.global_pool(h), 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet10")
    ap.add_argument("--sizes", default="28,32,48,64,96,128")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--train", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() // 2))
    print(f"{args.model}, batch {args.batch}: pooled-feature std across the batch at init"
          + (f"; mean loss of steps {args.train - 4}-{args.train} of {args.train} AdamW steps" if args.train else ""))
    print("size  zero_init_last  avg_down  max std     " + ("loss" if args.train else ""))
    for side in [int(s) for s in args.sizes.split(",")]:
        rng = np.random.default_rng(side)
        x, y = volumes(args.batch, side, rng)
        for zil in (True, False):
            for avg in (False, True):
                m = build(args.model, zil, avg, 0)
                m.train()
                with torch.no_grad():
                    s = pooled(m, x).std(0, unbiased=False).max().item()
                line = f"{side:4d}  {str(zil):14s}  {str(avg):8s}  {s:.3e}"
                if args.train:
                    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
                    losses = []
                    for step in range(args.train):
                        xb, yb = volumes(args.batch, side, rng)
                        opt.zero_grad()
                        loss = F.cross_entropy(m(xb), yb)
                        loss.backward()
                        opt.step()
                        losses.append(loss.item())
                    line += f"   {np.mean(losses[-5:]):.4f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()

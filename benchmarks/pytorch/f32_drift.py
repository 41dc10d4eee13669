#!/usr/bin/env python3
"""Where a float32 training run leaves its float64 twin, and why (issue 14's float32 question).

Replays an mc_train step log (mc_train --export-init/--export-steps) in PyTorch twice in lockstep,
float32 and float64, from the same initial weights on the same batches, and prints per step:
the two losses and their relative difference; the largest difference of the two runs' parameter
updates in units of the learning rate, the tensor it is in, and that element's gradient and
update in both runs; how many AdamW elements have a nonzero second moment so small that eps
decides the step (0 < sqrt(v_hat) < 10 eps in the float64 run); how
many ReLU inputs lie on the other side of the kink in float32; and the smallest batch-norm
batch variance (of a channel that is not identically zero) of the step.

  f32_drift.py --steps steps.jsonl [--max-steps 50] [--optim adamw|sgd] [--lr X] [--eps X]
               [--momentum X] [--weight-decay X]

--lr / --eps / ... replace the logged run's values (the batches and the initial weights stay),
which is how a setting is found where float32 rounding is not amplified. The last line is the
largest relative loss difference over the steps run.
"""
import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", required=True)
    ap.add_argument("--max-steps", type=int, default=50)
    ap.add_argument("--optim", choices=["adamw", "sgd"])
    ap.add_argument("--lr", type=float)
    ap.add_argument("--eps", type=float)
    ap.add_argument("--momentum", type=float)
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--quiet", action="store_true", help="only the summary line")
    args = ap.parse_args()
    import numpy as np
    import torch
    import torch.nn.functional as F
    import yaml
    from resnet3d_torch import ResNet3d
    from safetensors_py import load as load_weights
    from train_parity import augment, lr_rule, read_safetensors
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    with open(args.steps) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    head = lines[0]
    cfg = {k: yaml.safe_load(v) for k, v in head["config"].items()}
    steps = [r for r in lines[1:] if "validation" not in r][:args.max_steps]
    K, spe, epochs = cfg["model.num_classes"], head["steps_per_epoch"], cfg["train.epochs"]
    assert cfg["loss.type"] == "ce", "plain cross-entropy only"
    optim = args.optim or cfg["optim.name"]
    base = args.lr if args.lr is not None else cfg["optim.lr"]
    eps = args.eps if args.eps is not None else cfg["optim.eps"]
    wd = args.weight_decay if args.weight_decay is not None else cfg["optim.weight_decay"]
    mom = args.momentum if args.momentum is not None else cfg["optim.momentum"]
    sched = {"name": cfg["schedule.name"], "warmup_epochs": cfg["schedule.warmup_epochs"],
             "step_size": cfg["schedule.step_size"], "gamma": cfg["schedule.gamma"],
             "min_lr": cfg["schedule.min_lr"]}
    init = load_weights(head["init_weights"])
    runs = {}
    for dt in (torch.float32, torch.float64):
        m = ResNet3d(cfg["model.name"], cfg["model.in_chans"], K)
        m.load_state_dict(init, strict=True)
        m.to(dt).train()
        if optim == "adamw":
            o = torch.optim.AdamW(m.parameters(), lr=base, betas=tuple(cfg["optim.betas"]), eps=eps,
                                  weight_decay=wd)
        else:
            o = torch.optim.SGD(m.parameters(), lr=base, momentum=mom, weight_decay=wd)
        s = torch.optim.lr_scheduler.LambdaLR(o, lambda t: lr_rule(sched, t, base, epochs, spe) / base)
        relu_in, bn_var = [], []
        for mod in m.modules():  # ReLUs are in place: look at their input before they run
            if isinstance(mod, torch.nn.ReLU):
                mod.register_forward_pre_hook(lambda _m, i, rec=relu_in: rec.append(i[0].detach() > 0))
            if isinstance(mod, torch.nn.BatchNorm3d):
                mod.register_forward_pre_hook(
                    lambda _m, i, rec=bn_var: rec.append(i[0].detach().double().var((0, 2, 3, 4), unbiased=False)))
        runs[dt] = dict(model=m, opt=o, sched=s, relu=relu_in, bn=bn_var)
    train = read_safetensors(head["train_cache"])
    labels = np.array(train["labels"])
    names = [n for n, _ in runs[torch.float64]["model"].named_parameters()]
    worst = 0.0
    if not args.quiet:
        print(f"{optim} lr {base:g} eps {eps:g} wd {wd:g}" + (f" momentum {mom:g}" if optim == "sgd" else ""))
        print("step  loss f32      loss f64      rel       max|du|/lr  in                          "
              "eps-ruled  relu flips  min BN var  there: grad f32 / f64, update/lr f32 / f64")
    for r in steps:
        vols = [np.asarray(train["volumes"][i], dtype=np.float32) for i in r["indices"]]
        if r["augment"]:
            vols = [augment(np, v, a) for v, a in zip(vols, r["augment"])]
        x = torch.from_numpy(np.stack(vols))
        y = torch.from_numpy(labels[r["indices"]]).long()
        out = {}
        for dt, run in runs.items():
            run["relu"].clear()
            run["bn"].clear()
            before = [p.detach().clone().double() for p in run["model"].parameters()]
            lr = run["opt"].param_groups[0]["lr"]
            run["opt"].zero_grad()
            loss = F.cross_entropy(run["model"](x.to(dt)), y)
            loss.backward()
            grads = [p.grad.detach().double().clone() for p in run["model"].parameters()]
            run["opt"].step()
            run["sched"].step()
            upd = [p.detach().double() - b for p, b in zip(run["model"].parameters(), before)]
            out[dt] = (float(loss), upd, lr, grads)
        l32, u32, lr, g32 = out[torch.float32]
        l64, u64, _, g64 = out[torch.float64]
        rel = abs(l32 - l64) / abs(l64)
        worst = max(worst, rel)
        if args.quiet:
            continue
        du = [float((a - b).abs().max()) / lr for a, b in zip(u32, u64)]
        k = int(np.argmax(du))
        e = int((u32[k] - u64[k]).abs().argmax())  # the element: its gradient in both runs
        at = (float(g32[k].flatten()[e]), float(g64[k].flatten()[e]), float(u32[k].flatten()[e]) / lr,
              float(u64[k].flatten()[e]) / lr)
        ruled = 0
        if optim == "adamw":
            o64 = runs[torch.float64]["opt"]
            for p in runs[torch.float64]["model"].parameters():
                st = o64.state[p]
                vhat = st["exp_avg_sq"] / (1 - o64.param_groups[0]["betas"][1] ** st["step"])
                ruled += int(((vhat > 0) & (vhat.sqrt() < 10 * eps)).sum())  # exact zeros aside
        flips = sum(int((a != b).sum()) for a, b in zip(runs[torch.float32]["relu"], runs[torch.float64]["relu"]))
        v = torch.cat(runs[torch.float64]["bn"])
        v = v[v > 0]
        print(f"{r['global_step'] + 1:4d}  {l32:.9f}  {l64:.9f}  {rel:.2e}  {du[k]:.2e}    {names[k]:<26}  "
              f"{ruled:9d}  {flips:10d}  {float(v.min()) if len(v) else float('nan'):.3e}  "
              f"g {at[0]:+.2e} / {at[1]:+.2e}  u/lr {at[2]:+.3f} / {at[3]:+.3f}")
    print(f"largest relative loss difference float32 vs float64 over {len(steps)} steps: {worst:.3g}")


if __name__ == "__main__":
    main()

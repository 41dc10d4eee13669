#!/usr/bin/env python3
"""Replays an mc_train run in PyTorch, from our own artefacts, and writes both runs side by side.

mc_train --config RUN.yaml --export-init init.safetensors --export-steps steps.jsonl exports
the weights it starts from and, per step, the cache indices of the batch, each sample's
augmentation, the learning rate and the loss, and each validation's metrics
(pipeline/train_export.h describes the format). This script trains the same network
(tests/fixtures/resnet3d_torch.py: timm_3d / torchvision layout) from those weights, on the same
batches in the same order with the same transforms, the same loss, optimiser (torch.optim.AdamW
or SGD) and per-step schedule (torch's LambdaLR with mc_train's rule, engine/schedule.h: for
cosine without warm-up that is CosineAnnealingLR(T_max = all steps), checked every step), and
validates after the same epochs with the same post-hoc adjustment. The cache is read with numpy
(it is a safetensors file).

  train_parity.py --steps steps.jsonl [--init init.safetensors] --out DIR
                  [--dtype float32|float64] [--max-steps N] [--threads N]

Writes DIR/steps.csv (global_step, epoch, lr_ours, lr_torch, loss_ours, loss_torch, rel_diff),
DIR/epochs.csv (epoch, then loss / accuracy / balanced_accuracy / auc_macro of both) and
DIR/summary.json (the largest relative loss difference over the steps run, and per epoch).
Supported: loss.type ce and logit_adjusted; augmentation by flips, 90-degree turns and intensity
scale / shift (exact gathers); small rotations and noise are refused (not reproduced here).
The PyTorch side runs in the dtype our run used (mc_train --float64: float64), unless --dtype says.
"""
import argparse
import csv
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures"))


def fail(msg):
    sys.exit("train_parity.py: " + msg)


def read_safetensors(path):
    """name -> numpy array (volumes stay memory-mapped)."""
    import numpy as np
    dt = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = mm[8 + n + b: 8 + n + end].view(dt[e["dtype"]]).reshape(e["shape"])
    return out


def lr_rule(sched, step, base, epochs, spe):
    """engine/schedule.h, the one rule mc_train follows."""
    warm, total = sched["warmup_epochs"] * spe, epochs * spe
    if step < warm:
        return base * (step + 1) / warm
    t, span = step - warm, max(1, total - warm)
    if sched["name"] == "constant":
        return base
    if sched["name"] == "step":
        return base * sched["gamma"] ** (t // (max(1, sched["step_size"]) * spe))
    return sched["min_lr"] + (base - sched["min_lr"]) * (1 + math.cos(math.pi * min(t, span) / span)) / 2


def augment(np, vol, a):
    """kernels/augment.h for exact gathers: out[o] = in[c + A (o - c)], then scale and shift."""
    if a["interpolate"] or a["noise_std"] != 0:
        fail("this run used small rotations or noise (augment.rotate_prob / noise_prob > 0), which "
             "this script does not reproduce; export a run with them off")
    C, D, H, W = vol.shape
    A = np.asarray(a["A"], dtype=np.float32).reshape(3, 3)
    c = np.array([(D - 1) / 2, (H - 1) / 2, (W - 1) / 2], dtype=np.float32)
    o = np.stack(np.meshgrid(np.arange(D), np.arange(H), np.arange(W), indexing="ij")).astype(np.float32)
    q = o - c[:, None, None, None]
    src = [np.floor(c[r] + A[r, 0] * q[0] + A[r, 1] * q[1] + A[r, 2] * q[2] + 0.5).astype(np.int64)
           for r in range(3)]
    n = (D, H, W)
    if a["border"] == 1:
        src = [np.clip(s, 0, n[i] - 1) for i, s in enumerate(src)]
        inside = np.ones((D, H, W), bool)
    else:
        inside = np.all([(s >= 0) & (s < n[i]) for i, s in enumerate(src)], axis=0)
        src = [np.clip(s, 0, n[i] - 1) for i, s in enumerate(src)]
    out = vol[:, src[0], src[1], src[2]] * inside
    return np.float32(a["scale"]) * out + np.float32(a["shift"])


def metrics(np, logits, labels, counts, tau2, K):
    from sklearn.metrics import roc_auc_score
    prior = np.asarray(counts, float) / sum(counts)
    z = logits - tau2 * np.log(prior)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    pred = p.argmax(1)
    recalls = [np.mean(pred[labels == k] == k) for k in range(K) if np.any(labels == k)]
    aucs = [roc_auc_score(labels == k, p[:, k]) for k in range(K)
            if np.any(labels == k) and np.any(labels != k)]
    return {"accuracy": float(np.mean(pred == labels)), "balanced_accuracy": float(np.mean(recalls)),
            "auc_macro": float(np.mean(aucs)) if aucs else float("nan")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", required=True, help="mc_train --export-steps file")
    ap.add_argument("--init", help="mc_train --export-init file (default: the one the step log names)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["float32", "float64"],
                    help="the PyTorch side's dtype (default: the one our run used, from the step log)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: all exported)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
        import yaml
        from resnet3d_torch import ResNet3d
        from safetensors_py import load as load_weights
    except ImportError as e:
        fail(f"needs {e.name} (Debian: python3-torch, python3-numpy, python3-sklearn, python3-yaml)")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    with open(args.steps) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines or lines[0].get("format") != "medconv-train-steps" or lines[0].get("version") != 1:
        fail(f"{args.steps}: not a medconv-train-steps log of version 1 (mc_train --export-steps)")
    head = lines[0]
    args.dtype = args.dtype or head.get("dtype", "float32")
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    cfg = {k: yaml.safe_load(v) for k, v in head["config"].items()}
    steps = [r for r in lines[1:] if "validation" not in r]
    vals = {r["epoch"]: r["validation"] for r in lines[1:] if "validation" in r}
    if args.max_steps:
        steps = steps[:args.max_steps]
    init = args.init or head["init_weights"]
    if not init:
        fail("no initial weights: pass --init (mc_train --export-init)")
    K, spe, epochs = cfg["model.num_classes"], head["steps_per_epoch"], cfg["train.epochs"]
    loss_type, tau1, tau2 = cfg["loss.type"], cfg["loss.tau1"], cfg["posthoc.tau2"]
    if loss_type not in ("ce", "logit_adjusted"):
        fail(f"loss.type {loss_type} is not reproduced here (ce, logit_adjusted)")
    counts = head["class_counts"]
    log_prior = torch.tensor([math.log(c / sum(counts)) for c in counts], dtype=dtype)
    offset = tau1 * log_prior if loss_type == "logit_adjusted" else torch.zeros(K, dtype=dtype)

    model = ResNet3d(cfg["model.name"] if cfg["model.name"] != "medconv" else "resnet50",
                     cfg["model.in_chans"], K)
    model.load_state_dict(load_weights(init), strict=True)
    model.to(dtype)
    base = cfg["optim.lr"]
    if cfg["optim.name"] == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=base, betas=tuple(cfg["optim.betas"]),
                                eps=cfg["optim.eps"], weight_decay=cfg["optim.weight_decay"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=base, momentum=cfg["optim.momentum"],
                              nesterov=cfg["optim.nesterov"], weight_decay=cfg["optim.weight_decay"])
    sched = {"name": cfg["schedule.name"], "warmup_epochs": cfg["schedule.warmup_epochs"],
             "step_size": cfg["schedule.step_size"], "gamma": cfg["schedule.gamma"],
             "min_lr": cfg["schedule.min_lr"]}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: lr_rule(sched, t, base, epochs, spe) / base)
    cosine_only = sched["name"] == "cosine" and sched["warmup_epochs"] == 0 and sched["min_lr"] == 0
    if cosine_only:  # the rule is CosineAnnealingLR(T_max = all steps): check it against torch's
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(probe, T_max=epochs * spe)
        probe.step()  # a no-op (no gradient) that keeps torch's scheduler-order check quiet

    train = read_safetensors(head["train_cache"])
    val = read_safetensors(head["val_cache"])
    os.makedirs(args.out, exist_ok=True)
    rows, epoch_rows, worst = [], [], 0.0

    def validate(epoch):
        model.eval()
        logits = []
        with torch.no_grad():
            B = cfg["train.batch_size"]
            for i in range(0, len(val["labels"]), B):
                x = torch.from_numpy(np.asarray(val["volumes"][i:i + B], dtype=np.float32)).to(dtype)
                logits.append(model(x))
        z = torch.cat(logits)
        y = torch.from_numpy(np.array(val["labels"])).long()
        m = {"loss": float(F.cross_entropy(z + offset, y))}
        m.update(metrics(np, z.double().numpy(), y.numpy(), counts, tau2, K))
        ours = vals[epoch]
        epoch_rows.append([epoch] + [v for k in ("loss", "accuracy", "balanced_accuracy", "auc_macro")
                                     for v in (ours[k], m[k])])
        model.train()

    model.train()
    for r in steps:
        idx = r["indices"]
        y = torch.from_numpy(np.array(train["labels"])[idx]).long()
        if y.tolist() != r["labels"]:
            fail(f"step {r['global_step']}: the cache's labels {y.tolist()} are not the exported "
                 f"{r['labels']}: is this the cache the run trained on?")
        vols = [np.asarray(train["volumes"][i], dtype=np.float32) for i in idx]
        if r["augment"]:
            vols = [augment(np, v, a) for v, a in zip(vols, r["augment"])]
        x = torch.from_numpy(np.stack(vols)).to(dtype)
        lr = opt.param_groups[0]["lr"]
        if cosine_only and abs(cos.get_last_lr()[0] - lr) > 1e-9 * base:
            fail(f"step {r['global_step']}: CosineAnnealingLR gives {cos.get_last_lr()[0]}, the rule {lr}")
        opt.zero_grad()
        loss = F.cross_entropy(model(x) + offset, y)
        loss.backward()
        if cfg["train.grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["train.grad_clip"])
        opt.step()
        scheduler.step()
        if cosine_only:
            cos.step()
        lt = float(loss)
        rel = abs(lt - r["loss"]) / max(abs(lt), 1e-12)
        worst = max(worst, rel)
        rows.append([r["global_step"], r["epoch"] + 1, r["lr"], lr, r["loss"], lt, rel])
        last_of_epoch = r["step"] + 1 == spe
        if last_of_epoch and (r["epoch"] + 1) in vals:
            validate(r["epoch"] + 1)

    with open(os.path.join(args.out, "steps.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["global_step", "epoch", "lr_ours", "lr_torch", "loss_ours", "loss_torch", "rel_diff"])
        w.writerows(rows)
    with open(os.path.join(args.out, "epochs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch"] + [f"{k}_{s}" for k in ("val_loss", "val_accuracy", "val_balanced_accuracy",
                                                      "val_auc_macro") for s in ("ours", "torch")])
        w.writerows(epoch_rows)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"steps": len(rows), "dtype": args.dtype, "max_rel_loss_diff": worst,
                   "epochs": len(epoch_rows)}, f, indent=1)
    print(f"{len(rows)} steps, largest relative loss difference {worst:.3g}; {len(epoch_rows)} validations")


if __name__ == "__main__":
    main()

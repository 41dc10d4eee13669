#!/usr/bin/env python3
"""The ours / PyTorch table of scripts/gpu_check.sh, from the JSON that mc_bench and the
PyTorch scripts wrote into the check's state folder (bench_*.json, bench_loader.txt, torch_*.json).

Each headline case pairs one mc_bench record with one PyTorch record, found by the fields and
names below; "ours / PyTorch" is the ratio of median times (below 1: ours is faster). Where both
print a value (loss, AUC) the largest difference is shown too: the data are identical by
construction (benchmarks/loss_metric_cases.h). Writes a markdown table (--out) and every record,
ours and PyTorch's, into one JSON file (--json).

--mode rehearse: no timings exist; checks instead that the PyTorch scripts' --dry-run records
contain every PyTorch side the table needs (a renamed case fails here, not on the GPU machine).
--mode device: a PyTorch record the table needs that is missing or failed is an error.
Standard library only (the GPU machine's python has no extra packages for this).
"""
import argparse
import glob
import json
import os
import re
import sys


def model(kind, prec):
    return lambda r: (r.get("kind") == kind and r.get("name") == "resnet50" and r.get("precision") == prec
                      and r.get("batch") == 8 and r.get("size") == 128)


def named(kind, n, start, exclude=None):
    return lambda r: (r.get("kind") == kind and r.get("n") == n and str(r.get("name", "")).startswith(start)
                      and not (exclude and exclude in r.get("name", "")))


M, K64 = 1 << 20, 1 << 16
# case, ours (mc_bench), PyTorch (benchmarks/pytorch); None: no counterpart.
PAIRS = [
    ("resnet50 train step bf16 channels-last, 8x1x128^3", model("step", "bf16"), model("step", "bf16")),
    ("resnet50 inference bf16 channels-last, 8x1x128^3", model("infer", "bf16"), model("infer", "bf16")),
    ("resnet50 train step tf32, 8x1x128^3", model("step", "tf32"), model("step", "tf32")),
    ("resnet50 train step fp32, 8x1x128^3", model("step", "fp32"), model("step", "fp32")),
    ("device-to-device copy 1 GiB (yardstick)", named("copy", 1 << 28, "cudaMemcpyAsync"),
     named("copy", 1 << 28, "torch copy_")),
    ("fused CE fwd+grad 1M x 3", named("loss", M, "fused CE fwd+grad f32", "offset"),
     named("loss", M, "F.cross_entropy fwd+bwd f32", "offset")),
    ("fused CE fwd+grad 1M x 3, offset + weights", named("loss", M, "fused CE fwd+grad f32, offset"),
     named("loss", M, "F.cross_entropy fwd+bwd f32, +offset")),
    ("fused CE fwd+grad 64K x 1000", named("loss", K64, "fused CE fwd+grad f32", "offset"),
     named("loss", K64, "F.cross_entropy fwd+bwd f32", "offset")),
    ("fused CE fwd+grad 64K x 1000, offset + weights", named("loss", K64, "fused CE fwd+grad f32, offset"),
     named("loss", K64, "F.cross_entropy fwd+bwd f32, +offset")),
    ("AUC 10M x 3, sort + rank sums (f64)", named("auc", 10_000_000, "sort + rank sums"),
     named("auc", 10_000_000, "torch sort + mid-ranks (GPU, f64)")),
    ("AUC 10M x 3, all metrics vs torchmetrics", named("auc", 10_000_000, "classification_metrics"),
     named("auc", 10_000_000, "torchmetrics multiclass_auroc")),
    ("AdamW step, 46.2M parameters (flat)",
     lambda r: r.get("kind") == "optim" and r.get("name") == "adamw",
     named("optim", 46_161_219, "AdamW fused, flat")),
]
COMPILED = ("resnet50 train step bf16, PyTorch with torch.compile", model("step", "bf16"))


def load(paths):
    rows = []
    for p in sorted(paths):
        try:
            with open(p) as f:
                got = json.load(f)
        except (OSError, ValueError) as e:
            print(f"gpu_ratios: cannot read {p}: {e}", file=sys.stderr)
            continue
        for r in got:
            r["source"] = os.path.basename(p)
        rows += got
    return rows


def find(rows, match):
    hits = [r for r in rows if match(r)]
    return hits[0] if hits else None


def ms(r):
    return r.get("ms") if r and not r.get("error") and r.get("ms") else None


def values_diff(a, b):
    va, vb = (a or {}).get("values") or [], (b or {}).get("values") or []
    if not va or len(va) != len(vb) or None in va or None in vb:
        return ""
    return f"values differ by {max(abs(x - y) for x, y in zip(va, vb)):.1e}"


def loader_rows(state):
    """mc_bench --case loader prints volumes/s (no JSON): one row per line."""
    out = []
    try:
        text = open(os.path.join(state, "bench_loader.txt")).read()
    except OSError:
        return out
    for m in re.finditer(r"loader 128\^3 batch (\d+), (\d+) workers, (no augmentation|with augmentation):\s+([0-9.]+) volumes/s", text):
        out.append({"kind": "loader", "name": f"loader 128^3 batch {m[1]}, {m[2]} workers, {m[3]}",
                    "volumes_per_s": float(m[4]), "source": "bench_loader.txt"})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", required=True, help="the check's state folder")
    ap.add_argument("--mode", choices=["device", "rehearse"], required=True)
    ap.add_argument("--out", required=True, help="markdown table to write")
    ap.add_argument("--json", help="all records, ours and PyTorch's, into one file")
    args = ap.parse_args()
    ours = load(glob.glob(os.path.join(args.state, "bench_*.json"))) + loader_rows(args.state)
    torch = load(p for p in glob.glob(os.path.join(args.state, "torch_*.json"))
                 if not p.endswith("torch_compile.json"))
    compiled = load(glob.glob(os.path.join(args.state, "torch_compile.json")))
    errors = []
    lines = ["## ours / PyTorch (median times; below 1: ours is faster)", "",
             "| case | ours ms | PyTorch ms | ours / PyTorch | note |", "|---|---|---|---|---|"]
    for case, mine, theirs in PAIRS:
        a, b = find(ours, mine), find(torch, theirs)
        if b is None:
            errors.append(f"no PyTorch record for '{case}'")
        elif args.mode == "device" and ms(b) is None:
            errors.append(f"PyTorch's '{case}' did not run: {b.get('error') or 'no time'}")
        note = values_diff(a, b)
        if a is None and args.mode == "device":
            note = "mc_bench has no such case yet" if "AdamW" in case else "mc_bench did not run it"
        for r in (a, b):
            if r and r.get("error"):
                note += f" {r['source']}: {r['error']}"
        ta, tb = ms(a), ms(b)
        ratio = f"{ta / tb:.2f}" if ta and tb else "n/a"
        lines.append(f"| {case} | {f'{ta:.3f}' if ta else 'n/a'} | {f'{tb:.3f}' if tb else 'n/a'} | {ratio} | "
                     f"{note.strip() or ('rehearsal: not timed' if args.mode == 'rehearse' else '')} |")
    case, match = COMPILED
    a, b = find(ours, match), find(compiled, match)
    if b is not None:
        ta, tb = ms(a), ms(b)
        lines.append(f"| {case} | {f'{ta:.3f}' if ta else 'n/a'} | {f'{tb:.3f}' if tb else 'n/a'} | "
                     f"{f'{ta / tb:.2f}' if ta and tb else 'n/a'} | {(b.get('error') or '').strip()} |")
    for r in (x for x in ours if x.get("kind") == "loader"):
        lines.append(f"| {r['name']} | {r['volumes_per_s']:.1f} volumes/s | n/a | n/a | no PyTorch counterpart |")
    if errors:
        lines += [""] + [f"- ERROR: {e}" for e in errors]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ours": ours, "pytorch": torch + compiled}, f, indent=1)
    for e in errors:
        print(f"gpu_ratios: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

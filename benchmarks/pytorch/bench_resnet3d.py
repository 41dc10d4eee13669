#!/usr/bin/env python3
"""The work mc_bench times, in PyTorch, for side-by-side numbers on the same GPU.

3D ResNet-50 (timm_3d layout: timm_3d itself when importable, else the plain-PyTorch model in
tests/fixtures/resnet3d_torch.py), 1 input channel, 3 classes, AdamW, cross-entropy.
Training step (forward, loss, backward, AdamW) and inference for 8x128^3, 8x96^3, 32x64^3 in
fp32 (TF32 off), tf32 and bf16 (autocast, channels-last 3-D), timed with CUDA events: warm-up,
repeats, median. Prints the same table as mc_bench; --json writes the same records.

  bench_resnet3d.py [--case all|step|infer] [--precision all|fp32|tf32|bf16] [--shape all|128|96|64]
                    [--warmup N] [--repeats N] [--compile] [--json OUT] [--dry-run]

--dry-run: parse the arguments, list the cases (and write their records, untimed, to --json) and
stop; needs no GPU (scripts/gpu_check.sh --rehearse).
"""
import argparse
import json
import math
import os
import sys

try:
    import torch
    import torch.nn.functional as F
    MISSING = None
except ImportError as e:  # reported by main(), so that --help and --dry-run still work
    MISSING = e.name

SHAPES = [(8, 128), (8, 96), (32, 64)]
GFLOP_PER_VOLUME_128 = 231.7  # training step, forward + backward (REFERENCE.md)


def make_model():
    try:
        import timm_3d  # noqa: F401
        return timm_3d.create_model("resnet50", pretrained=False, in_chans=1, num_classes=3), "timm_3d"
    except Exception:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "..", "tests", "fixtures"))
        from resnet3d_torch import ResNet3d
        return ResNet3d("resnet50", 1, 3), "plain torch (timm_3d layout)"


def set_precision(p):
    tf32 = p == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True  # cudnnFind per shape, as mc_bench does


def time_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeats)]
    for start, stop in events:
        start.record()
        fn()
        stop.record()
    torch.cuda.synchronize()
    t = sorted(s.elapsed_time(e) for s, e in events)
    return t[len(t) // 2]


def measure(kind, batch, size, prec, args):
    """Median ms, and peak GiB, of one case; everything it allocates dies with its frame."""
    bf16 = prec == "bf16"
    fmt = torch.channels_last_3d if bf16 else torch.contiguous_format
    model, _ = make_model()
    model = model.cuda().to(memory_format=fmt)
    x = torch.randn(batch, 1, size, size, size, device="cuda").to(memory_format=fmt)
    y = (torch.arange(batch, device="cuda") % 3).long()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fwd = torch.compile(model) if args.compile else model
    if kind == "step":
        model.train()

        def fn():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(fwd(x).float(), y)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def fn():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                fwd(x)

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ms = time_ms(fn, args.warmup, args.repeats)
    return ms, torch.cuda.max_memory_allocated() / 2**30


def new_row(kind, batch, size, prec):
    return {"kind": kind, "name": "resnet50", "precision": prec, "batch": batch, "size": size,
            "ms": None, "volumes_per_s": None, "tflops": None, "peak_gib": None, "error": ""}


def run_case(kind, batch, size, prec, args):
    row = new_row(kind, batch, size, prec)
    set_precision(prec)
    gflop = GFLOP_PER_VOLUME_128 * (size / 128) ** 3 * batch / (1 if kind == "step" else 3)
    try:
        ms, peak = measure(kind, batch, size, prec, args)
        row.update(ms=ms, volumes_per_s=batch / (ms / 1e3), tflops=gflop / ms, peak_gib=peak)
    except Exception as e:  # OOM and friends: report, go on with the next case
        row["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    torch.cuda.empty_cache()
    return row


def print_row(r):
    head = f"{r['kind']:<6} {r['name']:<30} {r['precision']:<5} {r['batch']:>3}x{r['size']:<4}"
    if r["error"]:
        print(f"{head}  failed: {r['error']}", flush=True)
        return
    print(f"{head} {r['ms']:9.2f} ms {r['volumes_per_s']:8.1f} vol/s {r['tflops']:7.1f} TFLOP/s "
          f"{r['peak_gib']:6.2f} GiB peak", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="all", choices=["all", "step", "infer"])
    ap.add_argument("--precision", default="all", choices=["all", "fp32", "tf32", "bf16"])
    ap.add_argument("--shape", default="all", choices=["all", "128", "96", "64"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--json")
    ap.add_argument("--dry-run", action="store_true", help="parse, list the cases, time nothing")
    args = ap.parse_args()
    if args.warmup < 0 or args.repeats < 1:
        ap.error("--warmup must be >= 0 and --repeats >= 1")
    if args.dry_run:
        rows = [new_row(kind, batch, size, prec) for kind, batch, size, prec in cases(args)]
        for r in rows:
            print(f"would time: {r['kind']} {r['name']} {r['precision']} {r['batch']}x{r['size']}"
                  + (" (torch.compile)" if args.compile else ""))
        write_json(args.json, rows)
        return 0
    if MISSING:
        print(f"bench_resnet3d: {MISSING} not installed; nothing to time")
        return 0
    if not torch.cuda.is_available():
        print("bench_resnet3d: no GPU; nothing to time")
        return 0
    _, source = make_model()
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name} ({p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB), "
          f"PyTorch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, model: {source}"
          + (", torch.compile" if args.compile else ""))
    rows = []
    for kind, batch, size, prec in cases(args):
        rows.append(run_case(kind, batch, size, prec, args))
        print_row(rows[-1])
        write_json(args.json, rows)  # after every case: a run stopped by a time limit keeps them
    return 0


def cases(args):
    """(kind, batch, size, precision) of every case the arguments select, in run order."""
    precs = [q for q in ("fp32", "tf32", "bf16") if args.precision in ("all", q)]
    return [(kind, batch, size, prec) for kind in ("step", "infer") if args.case in ("all", kind)
            for batch, size in SHAPES if args.shape in ("all", str(size)) for prec in precs]


def write_json(path, rows):
    if path:
        with open(path, "w") as f:
            json.dump([{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                       for r in rows], f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""One AdamW step over MedConv's 46,161,219 parameters in PyTorch, for side-by-side numbers.

MedConv keeps parameters, gradients and moments in flat blocks, so its AdamW is one launch over
46.2M floats; PyTorch's fused AdamW over one flat tensor of that size is the matching case, and
over resnet50's 161 parameter tensors (fused and foreach) what a PyTorch model pays. GB/s counts
what the step must move: parameters, gradients and both moments read, parameters and moments
written (28 bytes per parameter). Timing: CUDA events, warm-up, median of repeats.

  bench_optim.py [--warmup N] [--repeats N] [--json OUT] [--dry-run]

--dry-run: parse the arguments, list the records (to --json too, untimed) and stop; needs
neither a GPU nor PyTorch (scripts/gpu_check.sh --rehearse).
"""
import argparse
import json
import os
import sys

try:
    import torch
    MISSING = None
except ImportError as e:  # reported by main(), so that --help and --dry-run still work
    MISSING = e.name

PARAMS = 46_161_219  # resnet50, 1 input channel, 3 classes (models/resnet3d, timm_3d)
BYTES_PER_PARAM = 28
CASES = [("AdamW fused, flat 46.2M", "flat", {"fused": True}),
         ("AdamW fused, resnet50's 161 tensors", "model", {"fused": True}),
         ("AdamW foreach, resnet50's 161 tensors", "model", {"foreach": True})]


def record(name):
    return {"kind": "optim", "name": name, "n": PARAMS, "c": 1, "ms": None, "gb_per_s": None,
            "error": ""}


def model_params():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "tests", "fixtures"))
    from resnet3d_torch import ResNet3d
    return [p for p in ResNet3d("resnet50", 1, 3).cuda().parameters()]


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


def run_case(name, params, options, args):
    r = record(name)
    try:
        ps = [torch.zeros(PARAMS, device="cuda", requires_grad=True)] if params == "flat" else model_params()
        n = sum(p.numel() for p in ps)
        if n != PARAMS:
            raise RuntimeError(f"{n} parameters, expected {PARAMS}")
        g = torch.Generator(device="cuda").manual_seed(0)
        for p in ps:
            p.grad = torch.randn(p.shape, device="cuda", generator=g) * 1e-3
        opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **options)
        r["ms"] = time_ms(opt.step, args.warmup, args.repeats)
        r["gb_per_s"] = BYTES_PER_PARAM * PARAMS / 1e9 / (r["ms"] / 1e3)
    except Exception as e:  # OOM, an option this PyTorch lacks: report, go on
        r["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    torch.cuda.empty_cache()
    if r["error"]:
        print(f"optim {name:<40} failed: {r['error']}", flush=True)
    else:
        print(f"optim {name:<40} {r['ms']:8.3f} ms {r['gb_per_s']:8.1f} GB/s", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--dry-run", action="store_true", help="parse, list the records, time nothing")
    args = ap.parse_args()
    if args.warmup < 0 or args.repeats < 1:
        ap.error("--warmup must be >= 0 and --repeats >= 1")
    rows = []
    if args.dry_run:
        rows = [record(name) for name, _, _ in CASES]
        for r in rows:
            print(f"would time: {r['kind']} {r['name']} {r['n']}")
    elif MISSING:
        print(f"bench_optim: {MISSING} not installed; nothing to time")
    elif not torch.cuda.is_available():
        print("bench_optim: no GPU; nothing to time")
    else:
        p = torch.cuda.get_device_properties(0)
        print(f"device: {p.name}, PyTorch {torch.__version__}")
        rows = [run_case(name, params, options, args) for name, params, options in CASES]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

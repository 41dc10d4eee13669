#!/usr/bin/env python3
"""mc_bench's `loss` and `auc` cases in PyTorch (and sklearn), for side-by-side numbers on one GPU.

loss: F.cross_entropy forward + backward (d loss / d logits, mean reduction, f32) at 1M x 3 and
      64K x 1000, plain and as F.cross_entropy(logits + offset, y, weight=w), beside the
      device-to-device copy bandwidth measured the same way (1 GiB, bytes read + written).
      GB/s counts logits read once, gradient written once, labels read once, as mc_bench does.
auc:  one-vs-rest ROC AUC per class, 3 classes, 10M rows: sklearn.metrics.roc_auc_score on the
      CPU (slow: timed --sklearn-repeats times), torchmetrics' multiclass_auroc on the GPU when it
      is installed, and a plain torch sort + mid-rank Mann-Whitney AUC on the GPU.

Data: the same splitmix64 generator as benchmarks/loss_metric_cases.cpp, so the loss and AUC
values printed here match mc_bench's. GPU timing: CUDA events, warm-up, median of repeats; the
1M x 3 loss rotates over buffer sets that add up to twice the L2, as mc_bench does.

  bench_loss_metrics.py [--case all|loss|auc] [--warmup N] [--repeats N] [--sklearn-repeats N]
                        [--compile] [--json OUT] [--dry-run]

--dry-run: parse the arguments, list the records a run would write (to --json too, untimed) and
stop; needs neither a GPU nor PyTorch (scripts/gpu_check.sh --rehearse).
"""
import argparse
import json
import math
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    MISSING = None
except ImportError as e:  # reported by main(), so that --help still works
    MISSING = e.name

K_LOGITS, K_LOSS_LABELS, K_AUC_LABELS, K_AUC_NOISE = 1, 2, 3, 4
COPY_BYTES = 1 << 30
AUC_ROWS, AUC_CLASSES = 10_000_000, 3
LOSS_SHAPES = ((1 << 20, 3), (1 << 16, 1000))
COPY_NAME = "torch copy_ D2D 1 GiB"
SKLEARN_NAME = "sklearn roc_auc_score x3 (CPU, f32)"
TORCHMETRICS_NAME = "torchmetrics multiclass_auroc (GPU, f32)"


def loss_name(adjusted, compiled):
    return ("F.cross_entropy fwd+bwd f32" + (", +offset, weight=" if adjusted else "")
            + (", compiled" if compiled else ""))


def sort_name(tag):
    return f"torch sort + mid-ranks (GPU, {tag})"


def draw(stream, n):
    """splitmix64((stream << 40) + i) for i < n, as uint64 (wrapping arithmetic, in place)."""
    z = np.arange(n, dtype=np.uint64)
    z += np.uint64((stream << 40) + 0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def uniform(stream, n):
    return (draw(stream, n) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def loss_data(n, c):
    logits = (uniform(K_LOGITS, n * c) * 8.0 - 4.0).astype(np.float32).reshape(n, c)
    labels = (draw(K_LOSS_LABELS, n) % np.uint64(c)).astype(np.int64)
    cls = np.arange(c, dtype=np.float64)
    offset = (-0.5 * np.log(1.0 + cls)).astype(np.float32)
    weight = (1.0 + 0.5 * (np.arange(c) % 3)).astype(np.float32)
    return logits, labels, offset, weight


def auc_data():
    """Class k's score: uniform, +0.5 for its positives, scaled into [0, 1), rounded to f32."""
    labels = (draw(K_AUC_LABELS, AUC_ROWS) % np.uint64(AUC_CLASSES)).astype(np.int64)
    u = uniform(K_AUC_NOISE, AUC_ROWS * AUC_CLASSES).reshape(AUC_ROWS, AUC_CLASSES)
    positive = labels[:, None] == np.arange(AUC_CLASSES)[None, :]
    return labels, ((u + 0.5 * positive) / 1.5).astype(np.float32)


def time_ms(fn, warmup, repeats):
    """Median ms of fn(i) with CUDA events; i counts every call, warm-up included."""
    call = 0
    for _ in range(warmup):
        fn(call)
        call += 1
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeats)]
    for start, stop in events:
        start.record()
        fn(call)
        call += 1
        stop.record()
    torch.cuda.synchronize()
    t = sorted(s.elapsed_time(e) for s, e in events)
    return t[len(t) // 2]


def record(kind, name, n, c):
    return {"kind": kind, "name": name, "n": n, "c": c, "ms": None, "gb_per_s": None,
            "copy_share": None, "values": [], "error": ""}


def measured(row, body):
    """Runs body(row); a failure (OOM, a missing feature) becomes the row's error. Prints it."""
    try:
        body(row)
    except Exception as e:
        row["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    print_row(row)
    return row


def print_row(r):
    head = f"{r['kind']:<5} {r['name']:<48} {r['n']:>9} x {r['c']:<5}"
    if r["error"]:
        print(f"{head}  failed: {r['error']}", flush=True)
        return
    line = f"{head} {r['ms']:10.3f} ms"
    if r["gb_per_s"]:
        line += f" {r['gb_per_s']:8.1f} GB/s"
    if r["copy_share"]:
        line += f" {100 * r['copy_share']:5.1f}% of copy"
    line += "".join(f" {v:.6f}" for v in r["values"])
    print(line, flush=True)


def gb_per_s(nbytes, ms):
    return nbytes / 1e9 / (ms / 1e3)


def copy_case(args):
    def body(r):
        src = torch.zeros(COPY_BYTES // 4, device="cuda")
        dst = torch.empty_like(src)
        r["ms"] = time_ms(lambda i: dst.copy_(src), args.warmup, args.repeats)
        r["gb_per_s"] = gb_per_s(2 * COPY_BYTES, r["ms"])
    return measured(record("copy", COPY_NAME, COPY_BYTES // 4, 1), body)


def loss_case(n, c, adjusted, copy_gbps, args):
    def body(r):
        logits, labels, offset, weight = loss_data(n, c)
        nbytes = 2 * 4 * n * c + 8 * n
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20)
        sets = 1 + math.ceil(2 * l2 / nbytes)
        zs = [torch.from_numpy(logits).cuda().requires_grad_() for _ in range(sets)]
        ys = [torch.from_numpy(labels).cuda() for _ in range(sets)]
        off, w = torch.from_numpy(offset).cuda(), torch.from_numpy(weight).cuda()

        def loss_fn(z, y):
            return F.cross_entropy(z + off, y, weight=w) if adjusted else F.cross_entropy(z, y)
        fwd = torch.compile(loss_fn) if args.compile else loss_fn
        last = {}

        def step(i):
            z = zs[i % sets]
            loss = fwd(z, ys[i % sets])
            torch.autograd.grad(loss, z)  # the gradient, without accumulating into z.grad
            last["loss"] = loss
        r["ms"] = time_ms(step, args.warmup, args.repeats)
        r["gb_per_s"] = gb_per_s(nbytes, r["ms"])
        r["copy_share"] = r["gb_per_s"] / copy_gbps if copy_gbps else None
        r["values"] = [last["loss"].item()]
    return measured(record("loss", loss_name(adjusted, args.compile), n, c), body)


def torch_auc(scores, labels, k):
    """Tie-aware Mann-Whitney AUC of column k: sort, mid-ranks per tie group, rank sum."""
    s, idx = torch.sort(scores[:, k])
    pos = labels[idx] == k
    _, group, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0)  # 1-based last position of each group
    rank2 = (2 * ends - counts + 1)[group]  # first + last = 2 * mid-rank
    p = pos.sum()
    q = scores.shape[0] - p
    return ((rank2 * pos).sum() - p * (p + 1)).double() / (2 * p * q).double()


def auc_cases(args):
    labels, scores = auc_data()
    n, c = scores.shape
    rows = []

    def sklearn_body(r):
        from sklearn.metrics import roc_auc_score
        times = []
        for _ in range(max(1, args.sklearn_repeats)):
            t0 = time.perf_counter()
            r["values"] = [roc_auc_score(labels == k, scores[:, k]) for k in range(c)]
            times.append((time.perf_counter() - t0) * 1e3)
        r["ms"] = sorted(times)[len(times) // 2]
    try:
        import sklearn  # noqa: F401
        rows.append(measured(record("auc", SKLEARN_NAME, n, c), sklearn_body))
    except ImportError:
        print("auc: sklearn not installed", flush=True)

    y = torch.from_numpy(labels).cuda()
    s32 = torch.from_numpy(scores).cuda()
    try:
        from torchmetrics.functional.classification import multiclass_auroc

        def tm_body(r):
            out = {}

            def fn(i):
                out["auc"] = multiclass_auroc(s32, y, num_classes=c, average="none", thresholds=None)
            r["ms"] = time_ms(fn, args.warmup, args.repeats)
            r["values"] = out["auc"].tolist()
        rows.append(measured(record("auc", TORCHMETRICS_NAME, n, c), tm_body))
    except ImportError:
        print("auc: torchmetrics not installed", flush=True)

    for dtype, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
        def sort_body(r, dtype=dtype):
            sd = s32.to(dtype)
            out = {}

            def fn(i):
                out["auc"] = torch.stack([torch_auc(sd, y, k) for k in range(c)])
            r["ms"] = time_ms(fn, args.warmup, args.repeats)
            r["values"] = out["auc"].tolist()
        rows.append(measured(record("auc", sort_name(tag), n, c), sort_body))
    return rows


def finite(v):
    """JSON has no NaN: None in its place, in lists too."""
    if isinstance(v, list):
        return [finite(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="all", choices=["all", "loss", "auc"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--sklearn-repeats", type=int, default=1, help="sklearn on 10M rows takes seconds")
    ap.add_argument("--compile", action="store_true", help="torch.compile the loss function")
    ap.add_argument("--json")
    ap.add_argument("--dry-run", action="store_true", help="parse, list the records, time nothing")
    args = ap.parse_args()
    if args.warmup < 0 or args.repeats < 1 or args.sklearn_repeats < 1:
        ap.error("--warmup must be >= 0, --repeats and --sklearn-repeats >= 1")
    if args.dry_run:
        rows = planned(args)
        for r in rows:
            print(f"would time: {r['kind']} {r['name']} {r['n']} x {r['c']}")
        write_json(args.json, rows)
        return 0
    if MISSING:
        print(f"bench_loss_metrics: {MISSING} not installed; nothing to time")
        return 0
    if not torch.cuda.is_available():
        print("bench_loss_metrics: no GPU; nothing to time")
        return 0
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name} ({p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB), "
          f"PyTorch {torch.__version__}" + (", torch.compile" if args.compile else ""))
    rows = []
    if args.case in ("all", "loss"):
        rows.append(copy_case(args))
        copy_gbps = rows[0]["gb_per_s"]
        for n, c in LOSS_SHAPES:
            for adjusted in (False, True):
                rows.append(loss_case(n, c, adjusted, copy_gbps, args))
        write_json(args.json, rows)  # before the slow AUC cases: a time limit keeps these
    if args.case in ("all", "auc"):
        rows += auc_cases(args)
    write_json(args.json, rows)
    return 0


def planned(args):
    """The records a run with these arguments writes (sklearn and torchmetrics when installed)."""
    rows = []
    if args.case in ("all", "loss"):
        rows.append(record("copy", COPY_NAME, COPY_BYTES // 4, 1))
        rows += [record("loss", loss_name(adjusted, args.compile), n, c)
                 for n, c in LOSS_SHAPES for adjusted in (False, True)]
    if args.case in ("all", "auc"):
        names = [SKLEARN_NAME, TORCHMETRICS_NAME, sort_name("f32"), sort_name("f64")]
        rows += [record("auc", name, AUC_ROWS, AUC_CLASSES) for name in names]
    return rows


def write_json(path, rows):
    if path:
        with open(path, "w") as f:
            json.dump([{k: finite(v) for k, v in r.items()} for r in rows], f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Trains rows of the MedConv paper's Table II (configs/table2/*.yaml) and writes one markdown
table in the paper's columns: accuracy, sensitivity, specificity, F1, ROC AUC, each with its
95% bootstrap interval, from each run's test report (mc_eval's report.json).

  python3 scripts/table2.py [CONFIG.yaml ...] [--set KEY=VALUE ...] [--out runs/table2]
                            [--build build] [--table-only] [--force] [--dry-run]

Without CONFIGs: every file in configs/table2/, in the paper's order. For each row: a network
this build does not have is reported "not available", a +pretrain row whose 2D weights file
(model.pretrained) is missing "needs 2D weights" (configs/table2/README.md says how to make
it); the others run mc_prep (when the split caches are missing), mc_train and mc_eval --split
test, each run in <out>/<config name>. A row whose report exists is not retrained (--force
retrains). --table-only only tabulates existing reports; --dry-run only says what it would do.
--set overrides go to every program (e.g. train.epochs=20 data.cache_dir=...).

Columns as the paper computes them (its sensitivity equals its accuracy in every row, so they
are micro averages): accuracy, sensitivity (micro = accuracy), specificity (micro), F1
(support-weighted), ROC AUC (macro one-vs-rest), in percent. Writes <out>/table2.md."""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The paper's row order (Table II), by config name.
ORDER = """resnet10t_pretrain resnet14t_pretrain resnet18 resnet18_windows resnet18_balaug
resnet18_pretrain resnet18_pretrain_balce resnet18_pretrain_balaug resnet18_pretrain_windows
resnet18_pretrain_balaug_windows resnet34 resnet34_balaug resnet34_windows resnet34_pretrain
resnet34_pretrain_balce resnet34_pretrain_balaug resnet50 resnet50_pretrain
resnet50_pretrain_balaug resnet50_pretrain_balce resnet50_pretrain_balce_schedulefree
resnet50_pretrain_balce_balaug resnet50_pretrain_balce_resample resnet50_pretrain_sam
resnet50_pretrain_balce_sam mobilenetv2_100_pretrain mobilenetv2_100_pretrain_balce
efficientnet_b0_pretrain efficientnet_b0_pretrain_balce resnext50_32x4d_pretrain
resnext50_32x4d_pretrain_balce resnext50_32x4d_pretrain_balaug resnet101_pretrain
resnet101_pretrain_balce resnet101_pretrain_balce_sam resnet152_pretrain
resnet152_pretrain_balce resnet152_pretrain_balce_sam medconv""".split()
# (report.json metric, column): the paper's columns.
COLUMNS = [("accuracy", "Accuracy"), ("sensitivity_micro", "Sensitivity"),
           ("specificity_micro", "Specificity"), ("f1_weighted", "F1 Score"), ("auc_macro", "ROC AUC")]


def yaml_value(text, section, key):
    """`key` of top-level `section` in our flat two-level configs (no YAML library needed)."""
    m = re.search(rf"^{section}:\s*\n((?:[ \t]+.*\n|\s*\n)*)", text, re.M)
    if not m:
        return None
    k = re.search(rf"^[ \t]+{re.escape(key)}:[ \t]*([^#\n]*)", m.group(1), re.M)
    return k.group(1).strip().strip("\"'") if k else None


def value(cfg_text, overrides, dotted):
    for o in reversed(overrides):
        k, _, v = o.partition("=")
        if k == dotted:
            return v
    section, key = dotted.split(".", 1)
    return yaml_value(cfg_text, section, key)


def known_networks(build):
    """The model.name values this build's mc_train accepts (from its --help)."""
    out = subprocess.run([os.path.join(build, "apps", "mc_train"), "--help"], capture_output=True,
                         text=True).stdout
    m = re.search(r"model\.name = .*\n\s+one of ([\w|]+):", out)
    if not m:
        sys.exit("table2: cannot read the networks from mc_train --help")
    return set(m.group(1).split("|"))


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    return r.returncode


def last_error(log):
    try:
        lines = [l.strip() for l in open(log) if l.strip()]
    except OSError:
        return "no log"
    errs = [l for l in lines if "error" in l.lower()]
    return (errs or lines or ["no output"])[-1][:200]


def cell(metrics, name):
    m = metrics.get(name) or {}
    v, ci = m.get("value"), m.get("ci")
    if v is None:
        return "n/a"
    s = f"{100 * v:.2f}"
    if ci and None not in ci:
        s += f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="*")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/table2")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    for o in a.set:
        if "=" not in o:
            sys.exit(f"table2: --set '{o}' is not KEY=VALUE")
    configs = a.configs or [os.path.join(ROOT, "configs", "table2", n + ".yaml") for n in ORDER]
    out = os.path.abspath(a.out)
    nets = known_networks(a.build) if not a.table_only else None
    bins = {p: os.path.join(a.build, "apps", p) for p in ("mc_prep", "mc_train", "mc_eval")}
    rows = []
    for cfg in configs:
        cfg = os.path.abspath(cfg)
        if not os.path.exists(cfg):
            sys.exit(f"table2: no config '{cfg}'")
        text = open(cfg).read()
        name = os.path.splitext(os.path.basename(cfg))[0]
        m = re.search(r"^# row: (.+)$", text, re.M)
        title = m.group(1).strip() if m else name
        run_dir = os.path.join(out, name)
        ov = [f"output.dir={run_dir}"] + a.set
        report = os.path.join(run_dir, "report", "report.json")
        net = value(text, ov, "model.name")
        status = None
        if nets is not None and net not in nets:
            status = f"not available: network '{net}' is not in this build"
        pre = value(text, ov, "model.pretrained")
        if status is None and not a.table_only and pre and not os.path.exists(os.path.join(ROOT, pre)) \
                and not os.path.exists(pre):
            status = f"needs 2D weights: {pre} (configs/table2/README.md)"
        if status is None and not a.table_only and (a.force or not os.path.exists(report)):
            cache = value(text, ov, "data.cache_dir") or ""
            train_cache = value(text, ov, "data.train_cache") or os.path.join(cache, "train.safetensors")
            steps = []
            if not os.path.exists(os.path.join(ROOT, train_cache)) and not os.path.exists(train_cache):
                steps.append([bins["mc_prep"], "--config", cfg] + ov)
            steps.append([bins["mc_train"], "--config", cfg] + ov)
            steps.append([bins["mc_eval"], "--config", cfg, "--split", "test", "--no-progress"] + ov)
            if a.dry_run:
                for s in steps:
                    print("would run:", " ".join(s))
            else:
                os.makedirs(run_dir, exist_ok=True)
                log = os.path.join(run_dir, "table2.log")
                print(f"{title}: training ({log})", flush=True)
                for s in steps:
                    if run(s, log) != 0:
                        status = f"failed: {os.path.basename(s[0])}: {last_error(log)}"
                        break
        if status is None and not a.dry_run:
            if os.path.exists(report):
                res = json.load(open(report))["evaluation"]["results"][0]
                rows.append((title, [cell(res["metrics"], k) for k, _ in COLUMNS], res))
                continue
            status = "no report yet"
        if status is None:
            status = "would train"
        print(f"{title}: {status}", flush=True)
        rows.append((title, None, status))
    lines = ["| Model | " + " | ".join(c for _, c in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for title, cells, extra in rows:
        if cells is None:
            lines.append(f"| {title} | {extra} |" + " |" * (len(COLUMNS) - 1))
        else:
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    table = ("Test split, in percent, [95% bootstrap interval]. Sensitivity and specificity are "
             "micro averages and F1 is support-weighted, as in the paper.\n\n" + "\n".join(lines) + "\n")
    print(table)
    if not a.dry_run:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "table2.md"), "w") as f:
            f.write("# Table II\n\n" + table)
        print("written:", os.path.join(out, "table2.md"))


if __name__ == "__main__":
    main()

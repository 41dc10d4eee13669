#!/usr/bin/env bash
# The demo: installs dependencies, builds, generates a CT-like data set, prepares the L1 caches,
# trains a small ResNet (on the GPU when there is one, else on the CPU) and writes the report.
# Extra arguments are config overrides, e.g.  scripts/demo.sh train.epochs=2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
B=${BUILD_DIR:-build}
CFG=configs/demo.yaml
if [ ! -f data/demo/labels.csv ]; then
  "$B/apps/mc_prep" --synthetic 240 --size 64 --seed 0 --out data/demo
fi
"$B/apps/mc_prep" --config "$CFG" "$@"
"$B/apps/mc_train" --config "$CFG" "$@"
"$B/apps/mc_eval" --config "$CFG" "$@" --split test

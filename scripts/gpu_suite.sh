#!/usr/bin/env bash
# Replaced by scripts/gpu_check.sh (one command that fits a short GPU window: build, GPU tests,
# sanitizers, benchmarks beside PyTorch, a training run, within a time budget). Kept so that
# old notes still work; arguments are passed on (the old stage names are gone).
exec bash "$(dirname "$0")/gpu_check.sh" "$@"

#!/usr/bin/env bash
# Configures and builds into ${BUILD_DIR:-build} (CUDA on when nvcc is present; architectures
# 80;90 unless CUDA_ARCHS says otherwise). Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
args=(-DCMAKE_BUILD_TYPE=Release)
# ccache, when installed, makes rebuilds of several checkouts cheap (nothing depends on it).
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}  # shared by sibling checkouts
fi
[ -n "${CUDA_ARCHS:-}" ] && args+=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS")
cmake -S . -B "$BUILD_DIR" -G Ninja "${args[@]}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"

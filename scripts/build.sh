#!/usr/bin/env bash
# Configures and builds into ${BUILD_DIR:-build} (CUDA on when nvcc is present; architectures
# 80;90 unless CUDA_ARCHS says otherwise). Extra arguments go to CMake. TARGETS (space-separated)
# builds only those; JOBS sets the parallelism (default: every core). CMake's messages go to
# $BUILD_DIR/configure.log, its warnings and errors to stderr.
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
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja "${args[@]}" "$@" >"$BUILD_DIR/configure.log"
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "${targets[@]}"

#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test with CTest. GPU tests skip without a GPU.
# Each test runs with MC_TEST_THREADS OpenMP threads and asks CTest for as many processors
# (tests/CMakeLists.txt), so -j $(nproc) fills the machine without oversubscribing it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" "$@"

#!/usr/bin/env bash
# Builds the CPU code and its tests under AddressSanitizer + UndefinedBehaviorSanitizer (gcc,
# CUDA off) and runs the fast CPU tests with CTest. Extra arguments go to ctest.
#
#   scripts/sanitize.sh [ctest args...]        (SAN_BUILD_DIR, default build-asan)
#
# Left out (they train a network for minutes on the CPU; the sanitizers make that 2-5x slower,
# and the code they run is covered by the unit tests that do run):
#   TrainE2E.*                                mc_train end to end, resume after interruption
#   DistTrain.*                               two mpirun ranks of mc_train
#   ResNet.Resnet10TrainsOnCpuAndLossFalls    a training loop until the loss falls
# Everything else runs, the golden PyTorch comparisons (TorchParity.*) included. The PyTorch
# fixtures of a normal build (build/fixtures/torch, or TORCH_FIXTURES=DIR) are reused when
# present instead of being generated again.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SAN_BUILD_DIR:-build-asan}
EXCLUDE='^(TrainE2E|DistTrain)\.|^ResNet\.Resnet10TrainsOnCpuAndLossFalls$'

# gcc: the compiler of the normal build. float-cast-overflow is not part of gcc's "undefined"
# (it is of clang's): added so that both builds check the same things.
san="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer -g1"
args=(-DCMAKE_BUILD_TYPE=Release -DMC_WITH_CUDA=OFF
      -DCMAKE_C_COMPILER="${SAN_CC:-gcc}" -DCMAKE_CXX_COMPILER="${SAN_CXX:-g++}"
      -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san"
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined,float-cast-overflow")
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}
fi
t0=$(date +%s)
cmake -S . -B "$BUILD_DIR" -G Ninja "${args[@]}" >/dev/null
# CPU seconds as well as wall seconds: on a shared machine the first says what a quiet one takes.
TIMEFORMAT="sanitize.sh: build %R s wall, %U s user + %S s sys CPU"
time cmake --build "$BUILD_DIR" -j "$(nproc)"
t1=$(date +%s)

# Third-party leaks only, each by its library: Open MPI (and the hwloc/libevent it brings)
# keeps process-lifetime allocations that it never frees, in every rank of the DistMpi tests.
# Nothing of ours is suppressed.
supp=$PWD/$BUILD_DIR/lsan.supp
cat >"$supp" <<'EOF'
leak:libmpi.so
leak:libopen-pal.so
leak:libopen-rte.so
leak:libhwloc.so
leak:libevent
EOF
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fixture_args=()
torch_dir=${TORCH_FIXTURES:-build/fixtures/torch}
if [ -d "$torch_dir/resnet10" ] && [ -d "$torch_dir/resnet50" ] && [ "$BUILD_DIR" != build ]; then
  mkdir -p "$BUILD_DIR/fixtures"
  rm -rf "$BUILD_DIR/fixtures/torch"
  ln -s "$(cd "$torch_dir" && pwd)" "$BUILD_DIR/fixtures/torch"
  fixture_args=(-FS torch_fixtures)  # the setup test would only write them again
  echo "sanitize.sh: reusing the PyTorch fixtures of $torch_dir"
fi

# Two passes. The MPI tests' ranks (under mpirun) need the slow unwinder on every allocation:
# Open MPI is built without frame pointers, so the fast one stops at the first frame and its
# leaks cannot be matched to its libraries. Everything else runs with the fast one.
MPI='^DistMpi\.'
log=$PWD/$BUILD_DIR/sanitize-ctest.log
: >"$log"
rc=0
TIMEFORMAT="sanitize.sh: tests %R s wall, %U s user + %S s sys CPU"
time {
  (cd "$BUILD_DIR" && ctest --output-on-failure -j "$(nproc)" -E "$EXCLUDE|$MPI" "${fixture_args[@]}" "$@") \
    >>"$log" 2>&1 || rc=$?
  (cd "$BUILD_DIR" && ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" \
     ctest --output-on-failure -j "$(nproc)" -R "$MPI" -E "$EXCLUDE" "$@") >>"$log" 2>&1 || rc=$?
}
t2=$(date +%s)
grep -E "tests passed|tests failed|\((Failed|Timeout|Subprocess aborted|SEGFAULT)\)" "$log" || true
sum() { sed -nE "$1" "$log" | awk '{n += $1} END {print n + 0}'; }
total=$(sum 's/.*tests failed out of ([0-9]+).*/\1/p')
failed=$(sum 's/.* ([0-9]+) tests failed out of.*/\1/p')
skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .* \((Skipped|Not Run)\)' "$log" || true)
echo "sanitize.sh: ASan+UBSan: $total tests, $failed failed, $skipped skipped, $((total - failed - skipped)) passed" \
     "(excluded: $EXCLUDE); build $((t1 - t0)) s, tests $((t2 - t1)) s; log: $log"
exit $rc

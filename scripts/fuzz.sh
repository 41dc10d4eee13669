#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ under ASan + UBSan (clang, CUDA off) and runs each
# target for a given time, after replaying the inputs of fuzz/regressions/<target>/.
#
#   scripts/fuzz.sh [--seconds N] [--long] [--keep-going] [--build-only] [target...]
#
#   --seconds N   fuzz each target N seconds (default 60)
#   --long        600 s each (the long mode)
#   --keep-going  don't stop at the first finding: libFuzzer's fork mode with one worker keeps
#                 fuzzing for the whole time and counts every crash, timeout and out-of-memory
#   targets       nifti nifti_gz safetensors config labels predictions (default: all)
#
# Prints one line per target (executions, seconds, crashes), then one line per distinct finding
# (how many inputs, what, the first frame in our code), and exits non-zero when any target
# crashed or any regression input still fails. Findings go to $FUZZ_BUILD_DIR/artifacts/<target>/
# (the previous run's to <target>.prev/), the corpus a run grows to $FUZZ_BUILD_DIR/corpus/<target>/
# (fuzz/corpus/<target>/ holds the committed seeds and is never written).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=60 keep_going=0 build_only=0 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --long) seconds=600; shift ;;
    --keep-going) keep_going=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*_fuzz.cpp; do t=$(basename "$f" _fuzz.cpp); targets+=("$t"); done
fi
for t in "${targets[@]}"; do
  [ -f "fuzz/${t}_fuzz.cpp" ] || { echo "fuzz.sh: no target '$t' (no fuzz/${t}_fuzz.cpp)" >&2; exit 2; }
done

# ---- build: every library instrumented for coverage and the sanitizers; harnesses link libFuzzer
CC=${FUZZ_CC:-clang-14} CXX=${FUZZ_CXX:-clang++-14}
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -gline-tables-only"
# Neither ninja nor ccache sees the ignorelist's content (it is a flag's file, not a header): its
# checksum in the flags makes ninja rebuild everything when it changes, CCACHE_EXTRAFILES makes
# ccache hash it.
san+=" -fsanitize-coverage-ignorelist=$PWD/fuzz/coverage_ignorelist.txt"
san+=" -DMC_FUZZ_IGNORELIST_MD5=$(md5sum <fuzz/coverage_ignorelist.txt | cut -c1-12)"
args=(-DCMAKE_BUILD_TYPE=Release -DMC_WITH_CUDA=OFF -DMC_FUZZ=ON
      -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX"
      -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san")
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}
  export CCACHE_EXTRAFILES=$PWD/fuzz/coverage_ignorelist.txt
fi
cmake -S . -B "$BUILD_DIR" -G Ninja "${args[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"
[ "$build_only" = 1 ] && exit 0

# ---- run
# Per target: the longest input worth trying (NIfTI: header, extensions and a small volume) and
# a dictionary of the format's tokens.
max_len() {
  case "$1" in
    nifti|nifti_gz) echo 65536 ;;
    safetensors) echo 16384 ;;
    config) echo 4096 ;;  # configs/medconv.yaml, the largest, is 3.6 KB
    *) echo 4096 ;;
  esac
}
# An input is a finding when it takes over 10 s (the real files take milliseconds; the margin is
# for a loaded 2-core machine) or drives the process past 2 GB (the largest input is 64 KB).
common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One line per distinct finding among the given inputs: count, kind (numbers masked) and the
# first frame in our sources.
triage() {
  local bin=$1 f out kind at
  shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    out=$("$bin" "${common[@]}" "$f" 2>&1 || true)
    kind=$(grep -m1 -oE 'runtime error: .*|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z -]+[a-z]|FUZZ_CHECK failed.*' <<<"$out" |
           sed -E 's/0x[0-9a-f]+|[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?/N/g' | cut -c1-100 || true)
    at=$(grep -m1 -oE '(io|losses|eval|engine|pipeline|kernels|models)/[A-Za-z0-9_]+\.(cpp|h):[0-9]+' <<<"$out" || true)
    echo "${kind:-no sanitizer report (replay it by hand)} at ${at:-?}"
  done | sort | uniq -c | sed 's/^ */    /'
}

failed=0
summary=()
for t in "${targets[@]}"; do
  bin=$BUILD_DIR/fuzz/fuzz_$t
  log=$BUILD_DIR/logs/$t.log
  art=$BUILD_DIR/artifacts/$t
  work=$BUILD_DIR/corpus/$t
  rm -rf "$art.prev"
  [ -d "$art" ] && mv "$art" "$art.prev"
  mkdir -p "$(dirname "$log")" "$art" "$work"
  opts=("${common[@]}" -max_len="$(max_len "$t")" -artifact_prefix="$art/")
  [ -f "fuzz/dicts/$t.dict" ] && opts+=(-dict="fuzz/dicts/$t.dict")

  # Regressions: each saved input replayed once; one that still fails is counted, not fatal to
  # the rest of the run.
  reg_total=0 reg_fail=0 reg_failing=()
  : >"$log.regressions"
  if [ -d "fuzz/regressions/$t" ]; then
    for f in "fuzz/regressions/$t"/*; do
      [ -f "$f" ] || continue
      reg_total=$((reg_total + 1))
      if ! "$bin" "${common[@]}" "$f" >>"$log.regressions" 2>&1; then
        reg_fail=$((reg_fail + 1))
        reg_failing+=("$f")
        echo "fuzz.sh: $t: regression input $f still fails (log: $log.regressions)" >&2
      fi
    done
  fi

  seeds=()
  [ -d "fuzz/corpus/$t" ] && seeds+=("fuzz/corpus/$t")
  run=("$bin" "${opts[@]}" -max_total_time="$seconds")
  [ "$keep_going" = 1 ] && run+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  start=$(date +%s)
  rc=0
  "${run[@]}" "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  elapsed=$(( $(date +%s) - start ))

  if [ "$keep_going" = 1 ]; then
    # Fork mode's status lines: "#<execs>: cov: ... oom/timeout/crash: a/b/c time: Ns ..."
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
    execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
    read -r ooms timeouts crashes < <(sed -E 's#.*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+).*#\1 \2 \3#' <<<"$last")
    crashes=$(( ${crashes:-0} + ${ooms:-0} + ${timeouts:-0} ))
  else
    execs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log" | tail -1)
    crashes=0
    [ "$rc" -ne 0 ] && crashes=1
  fi
  [ -z "$execs" ] && execs=0
  corpus=$(find "$work" -type f | wc -l)
  line=$(printf '%-12s executions %10s  time %4ss  crashes %s  regressions failing %s/%s  corpus %s' \
         "$t" "$execs" "$elapsed" "$crashes" "$reg_fail" "$reg_total" "$corpus")
  if [ "$crashes" -ne 0 ] || [ "$reg_fail" -ne 0 ]; then
    failed=1
    line+="  FAILED (log: $log; inputs: $art/)"
  fi
  echo "$line"
  summary+=("$line")
  if [ "$reg_fail" -ne 0 ]; then
    while IFS= read -r l; do echo "$l (regression)"; summary+=("$l (regression)"); done \
      < <(triage "$bin" "${reg_failing[@]}")
  fi
  if [ "$crashes" -ne 0 ]; then
    while IFS= read -r l; do echo "$l"; summary+=("$l"); done < <(triage "$bin" "$art"/*)
  fi
done
if [ ${#targets[@]} -gt 1 ]; then
  echo "---- fuzz.sh summary (${seconds}s per target)"
  printf '%s\n' "${summary[@]}"
fi
exit $failed

#!/usr/bin/env bash
# The GPU check: one command that, on a GPU machine, builds what it needs and runs the GPU tests,
# compute-sanitizer on our own kernels, mc_bench beside the same work in PyTorch and a short
# training run, inside a total budget (420 s), and writes $OUT/summary.md whatever happens.
#
# On the GPU machine, from the repo root (the device tool's `run`):
#   command:   bash scripts/gpu_check.sh
#   carry:     [".gpu-carry"]      made beforehand on the CPU machine: bash scripts/gpu_carry.sh
#   timeout_s: 600                 the script ends itself within its budget (--budget S)
# Anywhere else with a GPU: OUT=/some/dir bash scripts/gpu_check.sh
# Without a GPU (CI): bash scripts/gpu_check.sh --rehearse  runs every stage's logic with the GPU
# work left out: the dependency report, the same configure and targets (and again with
# MC_WITH_NIFTI=OFF, whose tests must pass with the NIfTI ones skipping), a configure that sees
# only the carried .debs, every gtest filter matching tests, mc_bench's and the PyTorch scripts'
# arguments, the training commands on the CPU, and this summary.
#
# Stages (budget s / the least it starts with; a stage that would not fit is skipped, saying so):
#   deps       15 /  5  one line per header/library (found where, version); what the machine
#                       lacks is unpacked from .gpu-carry/ into $BUILD_DIR/deps (never into /)
#   build     150 / 60  configure + build of the targets the stages run, sm_90 only, -j$(nproc)
#                       (measured here: 283 CPU-s for the whole tree, the longest file
#                       kernels/metrics.cu 14 CPU-s: about 40-60 s on 16 cores)
#   tests      75 / 40  the GPU tests only: one process per test binary with a gtest filter
#   sanitize   60 / 30  compute-sanitizer memcheck, racecheck, synccheck on our own kernels
#   bench      75 / 30  mc_bench: the headline cases (each under its own time limit)
#   torch      90 / 40  the same cases in PyTorch, then the ours / PyTorch table
#   train      30 / 20  2 epochs of mc_train on generated data on the GPU
#   compile    90 / 60  torch.compile of the bf16 step, only with the time left (optional)
# The tables of targets, test filters, benchmark cases: scripts/gpu_check_stages.sh.
# Outputs in $OUT (few files, as the device tool brings back at most 8): summary.md (one line per
# stage: status, seconds, key figures; the ratio table), check.log (every stage's output),
# bench.json (all timing records, ours and PyTorch's), logs.tar.gz (per-stage logs, gtest JSON,
# sanitizer reports, CMake cache, the training run's log).
# Options: --rehearse, --budget SECONDS (default 420; 2700 rehearsing), --skip STAGE,STAGE.
# Environment: OUT, BUILD_DIR (default build-gpu; build when rehearsing), CARRY_DIR (.gpu-carry),
# JOBS, CUDA_ARCHS (90), PYTHON (python3), GPU_CHECK_SYSTEM_ROOTS (where the system's libraries
# are looked for, default "/usr /usr/local"; a folder with nothing in it makes every library come
# from the carry: how the carry was tried on the CPU machine).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SELF=$ROOT/scripts/gpu_check.sh
export ARCH=${ARCH:-$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)}
# shellcheck source=scripts/gpu_check_stages.sh
source "$ROOT/scripts/gpu_check_stages.sh"

# ---------------------------------------------------------------- a stage, run by the driver
if [ "${1:-}" = "--stage" ]; then
  export STAGE=$2
  [ -f "$STATE/env.sh" ] && source "$STATE/env.sh"
  "stage_$2"
  exit $?
fi

# ---------------------------------------------------------------- the driver
MODE=device
BUDGET=""
SKIP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rehearse) MODE=rehearse ;;
    --budget) BUDGET=$2; shift ;;
    --skip) SKIP=",$2,"; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
export MODE
if [ "$MODE" = rehearse ]; then  # CI: two CPU cores, a full build without NIfTI
  export BUILD_DIR=${BUILD_DIR:-build} OUT=${OUT:-$ROOT/out/gpu_check_rehearsal}
  BUDGET=${BUDGET:-2700}
else
  export BUILD_DIR=${BUILD_DIR:-build-gpu} OUT=${OUT:-$ROOT/out/gpu_check}
  BUDGET=${BUDGET:-420}
fi
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
case "$OUT" in /*) ;; *) OUT=$ROOT/$OUT ;; esac
export CARRY_DIR=${CARRY_DIR:-$ROOT/.gpu-carry} JOBS=${JOBS:-$(nproc)} CUDA_ARCHS=${CUDA_ARCHS:-90}
export PYTHON=${PYTHON:-python3} STATE=$BUILD_DIR/gpu_check
mkdir -p "$OUT" "$BUILD_DIR"
rm -rf "$STATE"
mkdir -p "$STATE/logs"
SUMMARY=$OUT/summary.md
LOG=$OUT/check.log
: >"$LOG"
T0=$(date +%s)
RESERVE=10  # for the summary and the log archive at the end
FAILED=0
SKIPPED=0
CURRENT=""

elapsed() { echo $(($(date +%s) - T0)); }
row() {  # stage status seconds budget figures
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "${5//|//}" >>"$SUMMARY"
}

{
  echo "# GPU check ($MODE) $(date -u +%FT%TZ)"
  echo
  echo "- machine: $(uname -n), $(nproc) cores, $(uname -m); GPU: $(gpu_name)"
  if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
    echo "- tree: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD || echo ' (modified)'), budget ${BUDGET} s"
  else
    echo "- tree: no git history here, budget ${BUDGET} s"
  fi
  echo
  echo "| stage | status | s | budget | key figures |"
  echo "|---|---|---|---|---|"
} >"$SUMMARY"

finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$CURRENT" ]; then
    row "$CURRENT" "KILLED" "?" "" "the check was interrupted during this stage"
    FAILED=1
  fi
  [ -f "$STATE/ratios.md" ] && { echo; cat "$STATE/ratios.md"; } >>"$SUMMARY"
  local verdict="every stage passed"
  [ "$SKIPPED" -gt 0 ] && verdict="$SKIPPED stage(s) skipped, the others passed"
  [ "$FAILED" -ne 0 ] && verdict="FAILED (see the table)"
  { echo; echo "**$verdict** in $(elapsed) s of ${BUDGET} s."; } >>"$SUMMARY"
  cp "$BUILD_DIR/CMakeCache.txt" "$STATE/logs/" 2>/dev/null
  (cd "$STATE" && tar -czf "$OUT/logs.tar.gz" logs $(ls -d bench_* torch_* ratios.md 2>/dev/null))
  [ -f "$STATE/bench.json" ] && cp "$STATE/bench.json" "$OUT/bench.json"
  echo
  cat "$SUMMARY"
  [ "$FAILED" -ne 0 ] && exit 1
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# stage NAME BUDGET LEAST [NEEDS...]: runs `stage_NAME` in its own process under `timeout`, its
# output into check.log and logs/NAME.log; the stage leaves its key figures in $STATE/NAME.fig.
declare -A DONE
stage() {
  local name=$1 budget=$2 least=$3 need
  shift 3
  if [[ "$SKIP" == *",$name,"* ]]; then
    row "$name" "skip" 0 "$budget" "--skip"; SKIPPED=$((SKIPPED + 1)); DONE[$name]=skip; return
  fi
  for need in "$@"; do
    if [ "${DONE[$need]:-}" != ok ]; then
      row "$name" "skip" 0 "$budget" "needs $need, which did not pass"
      SKIPPED=$((SKIPPED + 1)); DONE[$name]=skip; return
    fi
  done
  local left=$((BUDGET - $(elapsed) - RESERVE))
  if [ "$left" -lt "$least" ]; then
    row "$name" "skip" 0 "$budget" "would not fit: needs at least ${least} s, ${left} s left"
    SKIPPED=$((SKIPPED + 1)); DONE[$name]=skip; return
  fi
  local limit=$((budget < left ? budget : left)) t=$(date +%s) rc
  echo "==== $name (limit ${limit} s)" | tee -a "$LOG"
  CURRENT=$name
  STAGE_END=$(($(date +%s) + limit)) timeout -k 5 "$limit" bash "$SELF" --stage "$name" 2>&1 |
    tee "$STATE/logs/$name.log" | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  CURRENT=""
  local fig="" secs=$(($(date +%s) - t))
  [ -f "$STATE/$name.fig" ] && fig=$(tr '\n' ' ' <"$STATE/$name.fig")
  if [ "$rc" -eq 0 ]; then
    row "$name" "ok" "$secs" "$budget" "$fig"; DONE[$name]=ok
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    row "$name" "TIMEOUT" "$secs" "$budget" "stopped at its ${limit} s limit. $fig"; DONE[$name]=fail; FAILED=1
  elif [ "$rc" -eq 3 ]; then  # a stage with nothing to run here says why (exit 3)
    row "$name" "skip" "$secs" "$budget" "$fig"; DONE[$name]=skip; SKIPPED=$((SKIPPED + 1))
  else
    row "$name" "FAIL" "$secs" "$budget" "exit $rc. $fig"; DONE[$name]=fail; FAILED=1
  fi
  echo "==== $name: ${DONE[$name]} in ${secs} s" | tee -a "$LOG"
}

if [ "$MODE" = rehearse ]; then
  stage deps 60 30
  stage build 900 60 deps
  stage nifti_off 1200 60 deps
  stage carry 300 30 deps
  stage tests 120 30 build
  stage sanitize 60 10 build
  stage bench 60 10 build
  stage torch 120 30
  stage train 300 30 build
else
  stage deps 15 5
  stage build 150 60 deps
  stage tests 75 40 build
  stage sanitize 60 30 build
  stage bench 75 30 build
  stage torch 90 40
  stage train 30 20 build
  stage compile 90 60 torch
fi

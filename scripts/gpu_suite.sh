#!/usr/bin/env bash
# The GPU suite, in one script, for a machine with an NVIDIA GPU (Ubuntu 24.04, CUDA 13):
#   build     configure and build (sm_90 unless CUDA_ARCHS says otherwise) into $BUILD_DIR
#   test      ctest: CPU tests in parallel, then the CUDA tests (Cuda*) one at a time
#   sanitize  compute-sanitizer: memcheck on the CUDA tests (large convolutions left out),
#             racecheck and synccheck on the tests that run our own kernels
#   bench     mc_bench (training step, inference, layer convolutions; every precision)
#   demo      the README demo on the GPU, and medconv.yaml at 128^3 on generated data for
#             3 epochs with the GPU's busy share sampled (nvidia-smi)
#   torch     benchmarks/pytorch/bench_resnet3d.py and bench_loss_metrics.py, the same work in PyTorch
#   all       every stage above, in that order (the default)
# Usage: OUT=/some/dir scripts/gpu_suite.sh [stage...]. Stages after `build` reuse $BUILD_DIR, so
# a session whose commands are time-limited can run `build test` in one call and
# `sanitize bench torch` in the next. Everything worth reading lands in $OUT (few, flat files):
#   summary.txt  machine, libraries, one line per stage with its status
#   build_test.log  configure/build tail and the ctest output
#   sanitizer.log   mc_bench.txt  mc_bench.json  torch_bench.txt  torch_bench.json
#   torch_loss_metrics.txt  torch_loss_metrics.json  demo.log  gpu_util.txt
#
# cuDNN: the system cuDNN 9.14 gives wrong bf16 3-D convolutions on large inputs (REFERENCE.md),
# so the build uses the cuDNN inside PyTorch's wheel (python -c 'import nvidia.cudnn') when
# present: its headers go first on the include path (-I beats the toolkit's -isystem), its
# library is handed to CMake as CUDNN_LIB, and LD_LIBRARY_PATH finds its sub-libraries.
# nifti_clib: when third_party/debs/*.deb exist they are unpacked (dpkg -x) into the build
# folder and put on CMake's prefix path; otherwise the system's copy is used, if any.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/out/gpu_suite}
BUILD_DIR=${BUILD_DIR:-$ROOT/build-gpu}
CUDA_ARCHS=${CUDA_ARCHS:-90}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT" "$BUILD_DIR"
SUMMARY=$OUT/summary.txt
LOG=$OUT/build_test.log
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(all)
wants() { for s in "${stages[@]}"; do [ "$s" = "$1" ] || [ "$s" = all ] && return 0; done; return 1; }
note() { echo "$*" | tee -a "$SUMMARY"; }
export PATH=/usr/local/cuda/bin:$PATH

# ---- environment: cuDNN from PyTorch's wheel, nifti from .debs ----
PY=${PYTHON:-python3}
CUDNN_DIR=$($PY -c 'import nvidia.cudnn as c; print(c.__path__[0])' 2>/dev/null || true)
cmake_extra=()
if [ -n "$CUDNN_DIR" ] && [ -d "$CUDNN_DIR/lib" ]; then
  # The wheel ships libcudnn.so.9 only; give the linker an unversioned name.
  mkdir -p "$BUILD_DIR/cudnn_lib"
  for f in "$CUDNN_DIR"/lib/libcudnn*.so.*; do
    ln -sf "$f" "$BUILD_DIR/cudnn_lib/$(basename "$f")"
    ln -sf "$f" "$BUILD_DIR/cudnn_lib/$(basename "$f" | sed 's/\.so\..*/.so/')"
  done
  cmake_extra+=(-DCUDNN_LIB="$BUILD_DIR/cudnn_lib/libcudnn.so"
                -DCMAKE_CXX_FLAGS="-I$CUDNN_DIR/include" -DCMAKE_CUDA_FLAGS="-I$CUDNN_DIR/include")
  export LD_LIBRARY_PATH=$BUILD_DIR/cudnn_lib:$CUDNN_DIR/lib:${LD_LIBRARY_PATH:-}
fi
if compgen -G "third_party/debs/*.deb" >/dev/null; then
  DEBROOT=$BUILD_DIR/debroot
  for d in third_party/debs/*.deb; do dpkg -x "$d" "$DEBROOT"; done
  cmake_extra+=(-DCMAKE_PREFIX_PATH="$DEBROOT/usr")
  export LD_LIBRARY_PATH=$DEBROOT/usr/lib/x86_64-linux-gnu:$DEBROOT/usr/lib:${LD_LIBRARY_PATH:-}
fi
# CMake 3.25 knows no C++20 flag for nvcc (the project asks for CUDA 20): supply it. Newer CMake
# sets these itself and ignores ours.
cmake_extra+=(-DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20
              -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20)

{
  echo "== gpu_suite $(date -u +%FT%TZ) stages: ${stages[*]}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -4
  nvcc --version 2>&1 | tail -1
  cmake --version | head -1
  echo "cuDNN for the build: ${CUDNN_DIR:-system}"
  $PY -c 'import torch; print("torch", torch.__version__, "cuDNN", torch.backends.cudnn.version())' 2>&1 | tail -1
} >>"$SUMMARY"

status=0
stage_result() {  # name, exit code
  if [ "$2" -eq 0 ]; then note "[ok]   $1"; else note "[FAIL] $1 (exit $2)"; status=1; fi
}

# ---- build ----
if wants build; then
  (
    echo "== configure"
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" "${cmake_extra[@]}" 2>&1 | tail -40
    echo "== build"
    cmake --build "$BUILD_DIR" -j "$JOBS" >"$BUILD_DIR/build_full.log" 2>&1
    rc=$?
    grep -E "error|warning" "$BUILD_DIR/build_full.log" | grep -v deprecated | head -100
    tail -30 "$BUILD_DIR/build_full.log"
    exit $rc
  ) >>"$LOG" 2>&1
  stage_result build $?
fi

# ---- tests ----
if wants test; then
  (
    cd "$BUILD_DIR"
    echo "== ctest: everything but the CUDA tests, in parallel"
    ctest --output-on-failure -j "$JOBS" -E '^Cuda' --timeout 900
    rc1=$?
    echo "== ctest: CUDA tests, one at a time (they share the GPU)"
    ctest --output-on-failure -j 1 -R '^Cuda' --timeout 900
    rc2=$?
    echo "== CUDA tests once more with MC_SYNC_CHECK=1 (every launch synchronised)"
    MC_SYNC_CHECK=1 ./tests/test_engine --gtest_filter='Cuda*:-CudaConvLarge*' --gtest_brief=1
    rc3=$?
    exit $((rc1 | rc2 | rc3))
  ) >>"$LOG" 2>&1
  stage_result test $?
fi

# ---- compute-sanitizer ----
if wants sanitize; then
  SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null)
  if [ -z "$SAN" ]; then
    note "[skip] sanitize: compute-sanitizer not found"
  else
    OURS='CudaElementwise*:CudaCast*:CudaLayout*:CudaSoftmax*:CudaCrossEntropy*:CudaPool*:CudaOptim*'
    (
      cd "$BUILD_DIR"
      # No leak check: the caching allocator keeps its blocks until the process ends, by design.
      echo "== memcheck: CUDA tests (large convolutions left out: memcheck is ~100x slower)"
      "$SAN" --tool memcheck --error-exitcode 3 \
        ./tests/test_engine --gtest_filter='Cuda*:-CudaConvLarge*' --gtest_brief=1
      rc1=$?
      echo "== racecheck: our kernels"
      "$SAN" --tool racecheck --error-exitcode 3 ./tests/test_engine --gtest_filter="$OURS" --gtest_brief=1
      rc2=$?
      echo "== synccheck: our kernels"
      "$SAN" --tool synccheck --error-exitcode 3 ./tests/test_engine --gtest_filter="$OURS" --gtest_brief=1
      rc3=$?
      echo "== memcheck + racecheck: the loss, metric and augmentation kernels (other binaries)"
      rc4=0
      for t in "test_losses:LossCuda*" "test_engine:MetricsCuda*" "test_kernels:Augment*Cuda*" \
               "test_io:Loader*Gpu*"; do
        bin=${t%%:*}; filt=${t#*:}
        [ -x "./tests/$bin" ] || continue
        "$SAN" --tool memcheck --error-exitcode 3 "./tests/$bin" --gtest_filter="$filt" --gtest_brief=1 || rc4=1
        "$SAN" --tool racecheck --error-exitcode 3 "./tests/$bin" --gtest_filter="$filt" --gtest_brief=1 || rc4=1
      done
      exit $((rc1 | rc2 | rc3 | rc4))
    ) >"$OUT/sanitizer.log" 2>&1
    stage_result sanitize $?
  fi
fi

# ---- the demo and the MedConv recipe on the GPU (issue: time per epoch, GPU busy share) ----
if wants demo; then
  (
    export BUILD_DIR
    B=$BUILD_DIR
    [ -f data/demo/labels.csv ] || "$B/apps/mc_prep" --synthetic 240 --size 64 --seed 0 --out data/demo --no-progress
    "$B/apps/mc_prep" --config configs/demo.yaml
    /usr/bin/time -v "$B/apps/mc_train" --config configs/demo.yaml output.dir="$OUT/demo_run"
    "$B/apps/mc_eval" --config configs/demo.yaml output.dir="$OUT/demo_run" --split test --out "$OUT/demo_report"
    # medconv.yaml at 128^3 on generated data for a few epochs, with GPU utilisation sampled.
    [ -f data/demo128/labels.csv ] || "$B/apps/mc_prep" --synthetic 160 --size 160 --seed 1 --out data/demo128
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 500 >"$OUT/gpu_util.txt" &
    smi=$!
    "$B/apps/mc_prep" --config configs/medconv.yaml data.raw.ct_dir=data/demo128/ct \
      data.raw.seg_dir=data/demo128/seg data.raw.labels_csv=data/demo128/labels.csv data.cache_dir=data/demo128/cache
    "$B/apps/mc_train" --config configs/medconv.yaml data.cache_dir=data/demo128/cache train.epochs=3 \
      output.dir="$OUT/medconv_run"
    kill $smi
    awk '{s+=$1; n++} END {if (n) printf "GPU busy share during medconv.yaml: %.0f%% of %d samples\n", s/n, n}' "$OUT/gpu_util.txt"
  ) >"$OUT/demo.log" 2>&1
  stage_result demo $?
fi

# ---- benchmarks ----
if wants bench; then
  "$BUILD_DIR/benchmarks/mc_bench" --case all --json "$OUT/mc_bench.json" >"$OUT/mc_bench.txt" 2>&1
  stage_result "bench (mc_bench)" $?
fi
if wants torch; then
  $PY benchmarks/pytorch/bench_resnet3d.py --json "$OUT/torch_bench.json" >"$OUT/torch_bench.txt" 2>&1
  stage_result "torch (bench_resnet3d.py)" $?
  # mc_bench --case loss|auc in PyTorch/sklearn/torchmetrics (torch_loss_metrics.txt, .json).
  $PY benchmarks/pytorch/bench_loss_metrics.py --json "$OUT/torch_loss_metrics.json" \
    >"$OUT/torch_loss_metrics.txt" 2>&1
  stage_result "torch (bench_loss_metrics.py)" $?
fi

note "== done: $([ $status -eq 0 ] && echo all stages passed || echo some stages FAILED)"
exit $status

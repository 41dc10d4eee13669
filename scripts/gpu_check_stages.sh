# The stages of scripts/gpu_check.sh (sourced by it; the driver runs each stage in a process of
# its own under `timeout`). First the tables of what is built and run: a rename anywhere in the
# project breaks the rehearsal, which is the point.
# shellcheck shell=bash

GPU_TARGETS=(test_engine test_losses test_kernels test_io test_models mc_bench mc_prep mc_train)

# GPU tests: "binary filter", one process each. Every CUDA parity test in each precision, the
# allocator/runtime checks, NCCL on one rank, the loss/metric/augmentation kernels, and resnet50's
# training step and Grad-CAM against the CPU.
GPU_TESTS=(
  "test_engine Cuda*:MetricsCuda*:DistNccl*:TrainerCuda*"
  "test_losses LossCuda*"
  "test_kernels Augment.Cuda*"
  "test_io Loader.Gpu*"
  "test_models ResNetCuda*:GradCam.Cuda*"
)
# compute-sanitizer on our own kernels (loss, metrics, elementwise, pool, softmax, optim,
# augment) at the tests' small sizes; no cuDNN/cuBLAS tests (memcheck over cuDNN's Find costs
# minutes) and none that provoke errors on purpose (the "-" parts: each must name a real test).
SAN_TESTS=(
  "test_engine CudaElementwise*:CudaCast*:CudaSoftmax*:CudaPool*:CudaOptim*:CudaCrossEntropy*:MetricsCuda*"
  "test_losses LossCuda*:-LossCuda.BadLabelFlagged"
  "test_kernels Augment.CudaMatchesCpu"
  "test_io Loader.GpuAugmentationMatchesCpu"
)
SAN_TOOLS=(memcheck racecheck synccheck)
SAN_OPTS=(--report-api-errors no --error-exitcode 3 --print-limit 20)
# mc_bench: "name|arguments|seconds at most|optional". Highest value first: when the stage's
# time runs out the rest is reported as not run. cuDNN plans are found once per process.
BENCH_RUNS=(
  "step_bf16|--case step --precision bf16 --shape 128 --warmup 2 --repeats 5|25|"
  "infer_bf16|--case infer --precision bf16 --shape 128 --warmup 2 --repeats 5|15|"
  "loss|--case loss|10|"
  "auc|--case auc|15|"
  "optim|--case optim --warmup 2 --repeats 10|15|optional"
  "loader|--case loader|15|"
  "step_tf32|--case step --precision tf32 --shape 128 --warmup 2 --repeats 5|20|"
  "step_fp32|--case step --precision fp32 --shape 128 --warmup 2 --repeats 5|25|"
)
# PyTorch, the same cases: "name|script and arguments|seconds at most".
TORCH_RUNS=(
  "resnet|benchmarks/pytorch/bench_resnet3d.py --case all --shape 128 --warmup 2 --repeats 5|45"
  "loss_metrics|benchmarks/pytorch/bench_loss_metrics.py|30"
  "optim|benchmarks/pytorch/bench_optim.py|15"
)
COMPILE_RUN="benchmarks/pytorch/bench_resnet3d.py --case step --precision bf16 --shape 128 --warmup 2 --repeats 5 --compile"
# Training: generated data, configs/demo.yaml (resnet10 at 32^3), 2 epochs on the GPU.
TRAIN_SUBJECTS=96 TRAIN_SIZE=48 TRAIN_EPOCHS=2
# Dependency groups the build needs: "group|header|libraries|CMake package". Libraries: ','
# separates ones all needed, '~' alternatives. The group names are gpu_carry.sh's.
DEP_GROUPS=(
  "zlib|zlib.h|libz.so|"
  "openblas|cblas.h|libopenblas.so~libblas.so|"
  "yaml-cpp|yaml-cpp/yaml.h|libyaml-cpp.so~libyaml-cpp.a|yaml-cpp"
  "gtest|gtest/gtest.h|libgtest.a~libgtest.so|"
  "nlohmann-json|nlohmann/json.hpp||nlohmann_json"
  "cli11|CLI/CLI.hpp||CLI11"
  "xxhash|xxhash.h||"
  "nifti|nifti/nifti2_io.h|libnifti2.so,libznz.so|"
)
PREFIX=${BUILD_DIR:-}/deps  # carried .debs are unpacked here (a stage process knows BUILD_DIR)

# ---------------------------------------------------------------- helpers
fig() { echo "$*" >>"$STATE/$STAGE.fig"; }
say() { printf '  %-14s %-8s %s\n' "$1" "$2" "$3"; }
left() { echo $((STAGE_END - $(date +%s))); }
first() { local f; for f in "$@"; do [ -e "$f" ] && { echo "$f"; return 0; }; done; return 1; }
gpu_name() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
    head -1 | grep . || echo none
}
# Where a group's files are under ROOT (/usr, /usr/local, a carried prefix): prints the header
# path, or nothing. The same places CMake's find_path/find_library/find_package look.
locate_group() {
  local root=$1 header=$2 libs=$3 cfg=$4 h="" d l alt ok
  for d in "$root/include" "$root/include/$ARCH"; do
    for s in "" openblas-pthread/ openblas/; do
      [ -f "$d/$s$header" ] && { h=$d/$s$header; break 2; }
    done
  done
  [ -n "$h" ] || return 1
  IFS=',' read -ra needed <<<"$libs"
  for l in "${needed[@]}"; do
    ok=""
    IFS='~' read -ra alts <<<"$l"
    for alt in "${alts[@]}"; do
      for d in "$root/lib/$ARCH" "$root/lib/$ARCH/openblas-pthread" "$root/lib" "$root/lib64"; do
        [ -e "$d/$alt" ] && { ok=1; break 2; }
      done
    done
    [ -n "$ok" ] || return 1
  done
  if [ -n "$cfg" ]; then
    compgen -G "$root/lib/$ARCH/cmake/$cfg*/*onfig.cmake" >/dev/null ||
      compgen -G "$root/lib/cmake/$cfg*/*onfig.cmake" >/dev/null ||
      compgen -G "$root/share/cmake/$cfg*/*onfig.cmake" >/dev/null ||
      compgen -G "$root/share/$cfg*/cmake/*onfig.cmake" >/dev/null || return 1
  fi
  echo "$h"
}
pkg_version() {  # the Debian/Ubuntu package a file came from, and its version
  local p
  p=$(dpkg-query -S "$1" 2>/dev/null || dpkg-query -S "$(realpath "$1")" 2>/dev/null)
  p=${p%%:*}
  [ -n "$p" ] && echo "$p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)" || echo "version unknown"
}
unpack_group() {  # group prefix: dpkg -x its .debs (MANIFEST), relink what points at missing files
  local group=$1 prefix=$2 g p v f l t so sys
  while read -r g p v f; do
    [ "$g" = "$group" ] && dpkg -x "$CARRY_DIR/$f" "$prefix"
  done <"$CARRY_DIR/MANIFEST"
  # zlib1g-dev's libz.so points at Debian's runtime, which is not carried: use the machine's.
  find "$prefix" -xtype l 2>/dev/null | while read -r l; do
    t=$(basename "$(readlink "$l")")
    so=$(echo "$t" | sed -E 's/^(lib[^.]+\.so\.[0-9]+).*/\1/')
    sys=$(/sbin/ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s {print $NF; exit}')
    [ -n "$sys" ] && ln -sf "$sys" "$l" && echo "  relinked ${l#"$prefix"/} -> $sys"
  done
}
manifest_groups() { [ -f "$CARRY_DIR/MANIFEST" ] && cut -d' ' -f1 "$CARRY_DIR/MANIFEST" | sort -u; }
cmake_cache() { sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt" | head -1; }
run_env() { LD_LIBRARY_PATH=$RUN_LD_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$@"; }
# gtest JSON -> "tests passed failed skipped first_failures"
gtest_counts() {
  python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
p = f = s = 0
bad = []
for suite in d.get("testsuites", []):
    for t in suite.get("testsuite", []):
        name = suite["name"] + "." + t["name"]
        if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
            s += 1
        elif t.get("failures"):
            f += 1
            bad.append(name)
        else:
            p += 1
print(p + f + s, p, f, s, ",".join(bad[:3]) or "-")
EOF
}
list_count() {  # binary filter -> number of tests the filter selects
  "$BUILD_DIR/tests/$1" --gtest_list_tests --gtest_filter="$2" 2>/dev/null | grep -c '^  '
}

# ---------------------------------------------------------------- 1. dependencies
stage_deps() {
  local missing=() carried=() system=() nifti=ON flags=() ld=() rc=0
  echo "machine: $(uname -sm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/2^20}' /proc/meminfo)"
  [ -r /etc/os-release ] && echo "os: $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "GPU: $(gpu_name)"
  local nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  if [ -x "$nvcc" ]; then say nvcc found "$nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*'))"
  else say nvcc MISSING "no CUDA compiler"; missing+=(nvcc); fi
  for t in cmake ninja g++; do
    if command -v $t >/dev/null; then say "$t" found "$(command -v $t) ($($t --version | head -1))"
    else say "$t" MISSING ""; missing+=("$t"); fi
  done
  if echo 'int main() { return 0; }' | g++ -fopenmp -x c++ - -o "$STATE/omp_probe" 2>/dev/null; then
    say OpenMP found "g++ -fopenmp links"
  else say OpenMP MISSING "g++ -fopenmp does not link"; missing+=(OpenMP); fi
  command -v mpicxx >/dev/null && say MPI found "$(command -v mpicxx) (optional)" ||
    say MPI absent "optional: the MPI tests skip"

  rm -rf "$PREFIX"
  local spec group header libs cfg where r
  for spec in "${DEP_GROUPS[@]}"; do
    IFS='|' read -r group header libs cfg <<<"$spec"
    where=""
    for r in ${GPU_CHECK_SYSTEM_ROOTS:-/usr /usr/local}; do
      where=$(locate_group "$r" "$header" "$libs" "$cfg") && break
    done
    if [ -n "$where" ]; then
      say "$group" system "$where ($(pkg_version "$where"))"; system+=("$group"); continue
    fi
    if manifest_groups | grep -qx "$group"; then
      mkdir -p "$PREFIX"
      unpack_group "$group" "$PREFIX"
      where=$(locate_group "$PREFIX/usr" "$header" "$libs" "$cfg")
      if [ -n "$where" ]; then
        say "$group" carried "$where ($(awk -v g="$group" '$1 == g {print $2, $3; exit}' "$CARRY_DIR/MANIFEST"))"
        carried+=("$group"); continue
      fi
      say "$group" MISSING "carried, but $header / $libs / $cfg not all in the .debs"
    else
      say "$group" MISSING "not on this machine, not in ${CARRY_DIR#"$ROOT"/}/MANIFEST"
    fi
    if [ "$group" = nifti ]; then nifti=OFF; else missing+=("$group"); fi
  done
  [ "$nifti" = OFF ] && echo "  -> building with MC_WITH_NIFTI=OFF: the training stage needs NIfTI and will skip"
  if [ ${#carried[@]} -gt 0 ]; then
    flags+=(-DCMAKE_PREFIX_PATH="$PREFIX/usr" -DCMAKE_LIBRARY_PATH="$PREFIX/usr/lib/$ARCH/openblas-pthread")
    ld+=("$PREFIX/usr/lib/$ARCH" "$PREFIX/usr/lib/$ARCH/openblas-pthread")
  fi

  # cuDNN: the one in PyTorch's wheel first (the system's 9.14 computes wrong bf16 3-D convolutions).
  local cudnn nccl inc v cxxflags=""
  # One interpreter start for every question to Python (importing torch takes seconds).
  local py
  py=$($PYTHON - 2>/dev/null <<'PY'
import importlib, importlib.util, sys
def path(m):
    try:
        return list(importlib.import_module(m).__path__)[0]
    except Exception:
        return ""
print("cudnn=" + path("nvidia.cudnn"))
print("nccl=" + path("nvidia.nccl"))
try:
    import numpy, torch
    print("torch=%s torch %s CUDA %s GPU %s cuDNN %s numpy %s" % (sys.executable, torch.__version__,
          torch.version.cuda, torch.cuda.is_available(), torch.backends.cudnn.version(), numpy.__version__))
except Exception:
    print("torch=")
for m in ("sklearn", "torchmetrics", "timm_3d"):
    print("mod_%s=%s" % (m, "found" if importlib.util.find_spec(m) else ""))
PY
)
  pyget() { sed -n "s/^$1=//p" <<<"$py" | head -1; }
  cudnn=$(pyget cudnn)
  if [ -n "$cudnn" ] && [ -f "$cudnn/include/cudnn_version.h" ] && compgen -G "$cudnn/lib/libcudnn.so*" >/dev/null; then
    v=$(awk '/define CUDNN_(MAJOR|MINOR|PATCHLEVEL) / {printf "%s%s", s, $3; s="."}' "$cudnn/include/cudnn_version.h")
    say cuDNN wheel "$cudnn ($v)"
    echo "export CUDNN_ROOT=$cudnn" >>"$STATE/env.sh"
    ld+=("$cudnn/lib")
  else
    inc=$(first /usr/local/cuda/include/cudnn_version.h /usr/include/cudnn_version.h /usr/include/$ARCH/cudnn_version*.h)
    if [ -n "$inc" ]; then
      v=$(awk '/define CUDNN_(MAJOR|MINOR|PATCHLEVEL) / {printf "%s%s", s, $3; s="."}' "$inc")
      say cuDNN system "$inc ($v; no PyTorch wheel)"
    else say cuDNN MISSING "neither PyTorch's wheel nor the system has cuDNN"; missing+=(cuDNN); fi
  fi
  # NCCL: the system's, else the wheel's (which has libnccl.so.2 only: give the linker a name).
  inc=$(first /usr/local/cuda/include/nccl.h /usr/include/nccl.h /usr/include/$ARCH/nccl.h)
  if [ -n "$inc" ] && first /usr/local/cuda/lib64/libnccl.so /usr/local/cuda/lib/libnccl.so \
                            /usr/lib/$ARCH/libnccl.so >/dev/null; then
    say NCCL system "$inc ($(awk '/define NCCL_(MAJOR|MINOR|PATCH) / {printf "%s%s", s, $3; s="."}' "$inc"))"
  else
    nccl=$(pyget nccl)
    if [ -n "$nccl" ] && [ -f "$nccl/include/nccl.h" ] && [ -e "$nccl/lib/libnccl.so.2" ]; then
      mkdir -p "$BUILD_DIR/deps/nccl/lib"
      ln -sf "$nccl/lib/libnccl.so.2" "$BUILD_DIR/deps/nccl/lib/libnccl.so"
      echo "export NCCL_ROOT=$BUILD_DIR/deps/nccl" >>"$STATE/env.sh"
      cxxflags="-isystem $nccl/include"
      ld+=("$nccl/lib")
      say NCCL wheel "$nccl ($(awk '/define NCCL_(MAJOR|MINOR|PATCH) / {printf "%s%s", s, $3; s="."}' "$nccl/include/nccl.h"))"
    else say NCCL MISSING "neither the system nor PyTorch's wheel has NCCL"; missing+=(NCCL); fi
  fi
  [ -n "$cxxflags" ] && flags+=(-DCMAKE_CXX_FLAGS="$cxxflags")
  local san
  san=$(command -v compute-sanitizer || first /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer)
  [ -n "$san" ] && say sanitizer found "$san ($("$san" --version 2>/dev/null | grep -io 'version [0-9.]*' | head -1))" ||
    say sanitizer absent "compute-sanitizer not found: the sanitizer stage skips"
  if [ -n "$(pyget torch)" ]; then
    say python found "$(pyget torch)"
    for m in sklearn torchmetrics timm_3d; do
      [ -n "$(pyget mod_$m)" ] && say "  $m" found "" || say "  $m" absent "(its rows are left out)"
    done
  elif [ "$MODE" = device ]; then say python MISSING "$PYTHON has no torch: the PyTorch stage fails"
  else say python absent "$PYTHON has no torch (the rehearsal's PyTorch scripts only parse)"; fi

  {
    echo "export MC_WITH_NIFTI=$nifti SANITIZER=$san"
    echo "export RUN_LD_LIBRARY_PATH=$(IFS=:; echo "${ld[*]}")"
    declare -p flags | sed 's/^declare -a flags/declare -a CMAKE_EXTRA/'
  } >>"$STATE/env.sh"
  # GPU_CHECK_ALLOW_NO_GPU=1 walks the device paths on a CPU machine (each GPU stage then fails).
  if [ "$MODE" = device ] && [ "$(gpu_name)" = none ] && [ -z "${GPU_CHECK_ALLOW_NO_GPU:-}" ]; then
    echo "no GPU visible (nvidia-smi)"; missing+=(GPU)
  fi
  fig "${#system[@]} system, ${#carried[@]} carried${carried:+ (${carried[*]})}, NIfTI $nifti;"
  fig "cuDNN $(grep -q CUDNN_ROOT "$STATE/env.sh" && echo wheel || echo system)${missing:+; MISSING: ${missing[*]}}"
  [ ${#missing[@]} -eq 0 ] || rc=1
  return $rc
}

# ---------------------------------------------------------------- 2. configure + build
build_into() {  # dir nifti(ON|OFF) targets...: the one configure + build every mode uses
  local dir=$1 nifti=$2 t0 t1 rc
  shift 2
  t0=$(date +%s)
  BUILD_DIR=$dir JOBS=$JOBS TARGETS="$*" bash "$ROOT/scripts/build.sh" \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" -DMC_WITH_NIFTI="$nifti" "${CMAKE_EXTRA[@]}" \
    >"$STATE/logs/build_$(basename "$dir").log" 2>&1
  rc=$?
  t1=$(date +%s)
  grep -E "MedConv:" "$dir/configure.log" 2>/dev/null | sed 's/^-- /  /'
  grep -E "error|warning:" "$STATE/logs/build_$(basename "$dir").log" | grep -v deprecated | head -40
  tail -5 "$STATE/logs/build_$(basename "$dir").log"
  echo "build of $dir: exit $rc in $((t1 - t0)) s"
  BUILD_SECONDS=$((t1 - t0))
  return $rc
}
stage_build() {
  build_into "$BUILD_DIR" "$MC_WITH_NIFTI" "${GPU_TARGETS[@]}" || { fig "build failed (see check.log)"; return 1; }
  local t missing=()
  for t in "${GPU_TARGETS[@]}"; do
    [ -x "$BUILD_DIR/tests/$t" ] || [ -x "$BUILD_DIR/apps/$t" ] || [ -x "$BUILD_DIR/benchmarks/$t" ] || missing+=("$t")
  done
  local warnings
  warnings=$(grep -c "warning:" "$STATE/logs/build_$(basename "$BUILD_DIR").log")
  fig "${#GPU_TARGETS[@]} targets, sm_$CUDA_ARCHS, -j$JOBS, ${BUILD_SECONDS} s, $warnings warnings;"
  fig "cuDNN $(cmake_cache "$BUILD_DIR" CUDNN_LIB)${missing:+; NOT BUILT: ${missing[*]}}"
  [ ${#missing[@]} -eq 0 ]
}

# ---------------------------------------------------------------- rehearsal only: NIfTI off
stage_nifti_off() {
  local dir=$BUILD_DIR-nifti-off
  build_into "$dir" OFF || { fig "MC_WITH_NIFTI=OFF does not build"; return 1; }
  # The layers whose binaries link io or run its programs; kernels, engine and models do not
  # read NIfTI (models needs the PyTorch fixtures, which the main build already checks).
  local out="$STATE/logs/nifti_off_ctest.log" rc
  (cd "$dir" && ctest -L '^(io|losses|eval|pipeline|apps)$' -j "$JOBS" --output-on-failure) >"$out" 2>&1
  rc=$?
  grep -E "tests passed|tests failed|Skipped|Failed|\*\*\*" "$out" | head -60
  local total skipped nskip
  total=$(sed -n 's/.*tests passed, [0-9]* tests failed out of \([0-9]*\).*/\1/p' "$out")
  skipped=$(grep -c "(Skipped)" "$out")
  nskip=$(grep -c "Nifti.*(Skipped)" "$out")
  fig "all targets build without nifti_clib; ctest io/losses/eval/pipeline/apps: $(grep -o '[0-9]*% tests passed.*' "$out" | head -1);"
  fig "${skipped} skipped (${nskip} Nifti*) of ${total:-?}"
  return $rc
}

# ---------------------------------------------------------------- rehearsal only: the carry
stage_carry() {
  if [ ! -f "$CARRY_DIR/MANIFEST" ]; then
    echo "no $CARRY_DIR/MANIFEST: making it (scripts/gpu_carry.sh)"
    bash "$ROOT/scripts/gpu_carry.sh" "$CARRY_DIR" || { fig "gpu_carry.sh failed"; return 1; }
  fi
  local spec group header libs cfg where bad=() p=$STATE/carry/prefix b=$STATE/carry/build
  rm -rf "$STATE/carry"
  mkdir -p "$p"
  for spec in "${DEP_GROUPS[@]}"; do
    IFS='|' read -r group header libs cfg <<<"$spec"
    unpack_group "$group" "$p"
    where=$(locate_group "$p/usr" "$header" "$libs" "$cfg")
    [ -n "$where" ] && say "$group" carried "$where" || { say "$group" MISSING "not in the carried .debs"; bad+=("$group"); }
  done
  # Configure as a machine that has none of these would: /usr and /usr/local ignored; the CUDA
  # libraries are named as this machine's main build found them.
  cmake -S "$ROOT" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" \
    -DCMAKE_PREFIX_PATH="$p/usr" -DCMAKE_LIBRARY_PATH="$p/usr/lib/$ARCH/openblas-pthread" \
    "-DCMAKE_IGNORE_PREFIX_PATH=/usr;/usr/local" -DMC_TORCH_PYTHON=/usr/bin/python3 \
    -DCUDNN_LIB="$(cmake_cache "$BUILD_DIR" CUDNN_LIB)" -DNCCL_LIB="$(cmake_cache "$BUILD_DIR" NCCL_LIB)" \
    >"$STATE/logs/carry_configure.log" 2>&1 || { tail -30 "$STATE/logs/carry_configure.log"; bad+=(configure); }
  local var val
  for var in yaml-cpp_DIR GTest_DIR nlohmann_json_DIR CLI11_DIR XXHASH_INCLUDE NIFTI2_LIB ZNZ_LIB \
             NIFTI2_INCLUDE ZLIB_INCLUDE_DIR ZLIB_LIBRARY_RELEASE BLAS_openblas_LIBRARY CBLAS_INCLUDE_DIR; do
    val=$(cmake_cache "$b" "$var")
    case "$val" in "$p"/*) say "$var" carry "${val#"$p"/}" ;; *) say "$var" WRONG "$val"; bad+=("$var") ;; esac
  done
  local kb
  kb=$(du -sk "$CARRY_DIR" | cut -f1)
  fig "$(wc -l <"$CARRY_DIR/MANIFEST") .debs, $((kb / 1024)) MB; CMake finds all ${#DEP_GROUPS[@]} groups in the carry alone${bad:+; FAILED: ${bad[*]}}"
  [ ${#bad[@]} -eq 0 ]
}

# ---------------------------------------------------------------- 3. GPU tests
stage_tests() {
  local spec bin filter n total=0 p=0 f=0 s=0 ng=0 bad=() counts t0 slow="" slowest=-1 rc=0
  for spec in "${GPU_TESTS[@]}"; do
    read -r bin filter <<<"$spec"
    n=$(list_count "$bin" "$filter")
    echo "$bin --gtest_filter=$filter: $n tests"
    [ "$n" -ge 1 ] || { echo "  the filter selects no test"; bad+=("$bin:$filter(none)"); rc=1; }
  done
  [ $rc -eq 0 ] || { fig "filters that select nothing: ${bad[*]}"; return 1; }
  for spec in "${GPU_TESTS[@]}"; do
    read -r bin filter <<<"$spec"
    t0=$(date +%s)
    # Each binary within what is left of the stage, so that a hang is named, not just the stage.
    OMP_NUM_THREADS=$JOBS run_env timeout -k 2 $(($(left) - 3)) "$BUILD_DIR/tests/$bin" \
      --gtest_filter="$filter" --gtest_output="json:$STATE/logs/gtest_$bin.json" 2>&1 |
      tee "$STATE/logs/gtest_$bin.txt"
    case "${PIPESTATUS[0]}" in 0) ;; 124|137) bad+=("$bin(timeout)"); rc=1 ;; *) rc=1 ;; esac
    [ $(($(date +%s) - t0)) -gt "$slowest" ] && slowest=$(($(date +%s) - t0)) slow=$bin
    if [ -f "$STATE/logs/gtest_$bin.json" ]; then
      read -r -a counts <<<"$(gtest_counts "$STATE/logs/gtest_$bin.json")"
      total=$((total + counts[0])) p=$((p + counts[1])) f=$((f + counts[2])) s=$((s + counts[3]))
      # gtest's JSON has the skip message only from 1.13 on; its text output always has it.
      ng=$((ng + $(grep -c "no GPU" "$STATE/logs/gtest_$bin.txt")))
      [ "${counts[4]}" != - ] && bad+=("${counts[4]}")
    else
      bad+=("$bin(crashed)"); rc=1
    fi
  done
  fig "${#GPU_TESTS[@]} binaries, $total tests: $p passed, $f failed, $s skipped; slowest $slow ${slowest} s${bad:+; failed: ${bad[*]}}"
  # On the GPU machine a test that skips for want of a GPU is a failure of the check.
  [ "$MODE" = device ] && [ "$ng" -gt 0 ] && { fig "; $ng skipped saying no GPU"; rc=1; }
  return $rc
}

# ---------------------------------------------------------------- 4. compute-sanitizer
stage_sanitize() {
  local spec bin filter n neg rc=0 bad=()
  for spec in "${SAN_TESTS[@]}"; do
    read -r bin filter <<<"$spec"
    n=$(list_count "$bin" "$filter")
    echo "$bin --gtest_filter=$filter: $n tests"
    [ "$n" -ge 1 ] || { bad+=("$bin:$filter(none)"); rc=1; }
    if [[ "$filter" == *:-* ]]; then  # each exclusion must still name a test
      for neg in $(echo "${filter#*:-}" | tr ':' ' '); do
        [ "$(list_count "$bin" "$neg")" -ge 1 ] || { echo "  excludes $neg, which no longer exists"; bad+=("$neg(stale)"); rc=1; }
      done
    fi
  done
  [ $rc -eq 0 ] || { fig "bad filters: ${bad[*]}"; return 1; }
  if [ -z "$SANITIZER" ]; then
    fig "${#SAN_TESTS[@]} filters x ${#SAN_TOOLS[@]} tools listed; compute-sanitizer not on this machine: not run"
    return 3
  fi
  local help opts=() o
  help=$("$SANITIZER" --help 2>&1)
  for ((i = 0; i < ${#SAN_OPTS[@]}; i += 2)); do
    o=${SAN_OPTS[i]}
    if grep -q -- "$o" <<<"$help"; then opts+=("$o" "${SAN_OPTS[i + 1]}"); else echo "  $SANITIZER does not know $o: left out"; fi
  done
  if [ "$MODE" = rehearse ]; then fig "filters listed, options checked (${opts[*]})"; return 0; fi
  # Every run at once (a few at a time): they only check, nothing here is timed.
  local tool runs=() pids=() log
  for tool in "${SAN_TOOLS[@]}"; do
    for spec in "${SAN_TESTS[@]}"; do
      read -r bin filter <<<"$spec"
      log=$STATE/logs/san_${tool}_$bin.log
      runs+=("$tool $bin")
      ( OMP_NUM_THREADS=2 run_env timeout -k 2 $(($(left) - 3)) "$SANITIZER" --tool "$tool" "${opts[@]}" \
          "$BUILD_DIR/tests/$bin" --gtest_filter="$filter" --gtest_brief=1 >"$log" 2>&1; echo $? >"$log.rc" ) &
      pids+=($!)
      while [ "$(jobs -rp | wc -l)" -ge 6 ]; do wait -n; done
    done
  done
  wait
  local r errors summary
  for r in "${runs[@]}"; do
    read -r tool bin <<<"$r"
    log=$STATE/logs/san_${tool}_$bin.log
    summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | tail -1 | sed 's/^=* *//')
    echo "$tool $bin: exit $(cat "$log.rc" 2>/dev/null || echo '?'): ${summary:-no summary}"
    case "$(cat "$log.rc" 2>/dev/null)" in
      0) ;;
      124|137) rc=1; bad+=("$tool:$bin(timeout)") ;;
      *) rc=1; bad+=("$tool:$bin"); grep -E "^=+ (Invalid|Race|Barrier|ERROR|Error)" "$log" | head -5 ;;
    esac
  done
  errors=$(cat "$STATE"/logs/san_*.log | grep -oE "ERROR SUMMARY: [0-9]+|\([0-9]+ errors" |
    grep -oE "[0-9]+" | awk '{s += $1} END {print s + 0}')
  fig "${#runs[@]} runs (${SAN_TOOLS[*]} x ${#SAN_TESTS[@]} binaries): ${errors:-0} errors${bad:+; failing: ${bad[*]}}"
  return $rc
}

# ---------------------------------------------------------------- 5. mc_bench
stage_bench() {
  local B=$BUILD_DIR/benchmarks/mc_bench help list="" spec name args limit opt rc=0 bad=() ran=() notrun=()
  help=$("$B" --help 2>&1) || { echo "$help"; fig "mc_bench --help fails"; return 1; }
  grep -q -- "--list" <<<"$help" && list=$("$B" --list 2>&1)
  allowed() {  # flag value: is value among the usage's choices for flag (op:NAME: in --list)?
    local choices
    if [[ "$2" == op:* ]]; then grep -qw -- "${2#op:}" <<<"$list"; return; fi
    choices=$(grep -o -- "$1 [a-z0-9:|]*" <<<"$help" | head -1 | cut -d' ' -f2)
    [[ "|$choices|" == *"|$2|"* ]]
  }
  for spec in "${BENCH_RUNS[@]}"; do
    IFS='|' read -r name args limit opt <<<"$spec"
    local ok=1 a v
    set -- $args
    while [ $# -gt 0 ]; do
      a=$1 v=${2:-}
      case "$a" in --case|--precision|--shape) allowed "$a" "$v" || ok=0; shift ;; --warmup|--repeats) shift ;; esac
      shift
    done
    if [ $ok -eq 0 ]; then
      if [ -n "$opt" ]; then echo "$name: mc_bench does not offer '$args' (yet): not run"; notrun+=("$name(not offered)"); continue; fi
      echo "$name: '$args' is not among mc_bench's choices:"; grep -- "--case\|--precision\|--shape" <<<"$help"
      bad+=("$name"); rc=1; continue
    fi
    # The arguments must parse: --dry-run where mc_bench has one, else --help after them.
    if grep -q -- "--dry-run" <<<"$help"; then "$B" $args --dry-run >/dev/null || { bad+=("$name(parse)"); rc=1; }
    else "$B" $args --help >/dev/null || { bad+=("$name(parse)"); rc=1; }; fi
  done
  # The ratio table finds mc_bench's rows by these names: they must be in the binary.
  local n
  for n in "fused CE fwd+grad f32" "sort + rank sums" "classification_metrics" "loader 128^3"; do
    grep -qaF "$n" "$B" || { echo "mc_bench no longer prints '$n' (scripts/gpu_ratios.py matches it)"; bad+=("name:$n"); rc=1; }
  done
  if [ "$MODE" = rehearse ] || [ $rc -ne 0 ]; then
    fig "${#BENCH_RUNS[@]} runs checked against mc_bench's choices${notrun:+; not offered: ${notrun[*]}}${bad:+; BAD: ${bad[*]}}"
    return $rc
  fi
  for spec in "${BENCH_RUNS[@]}"; do
    IFS='|' read -r name args limit opt <<<"$spec"
    [[ " ${notrun[*]} " == *" $name(not offered) "* ]] && continue
    [ "$(left)" -lt 5 ] && { notrun+=("$name(no time)"); continue; }
    [ "$limit" -gt "$(($(left) - 2))" ] && limit=$(($(left) - 2))
    echo "== mc_bench $args (at most ${limit} s)"
    if timeout -k 2 "$limit" env OMP_NUM_THREADS=$JOBS LD_LIBRARY_PATH="$RUN_LD_LIBRARY_PATH" \
         "$B" $args --json "$STATE/bench_$name.json" 2>&1 | tee "$STATE/bench_$name.txt"; then
      if [ "$name" != loader ] && [ ! -s "$STATE/bench_$name.json" ]; then
        bad+=("$name(no records)"); rc=1  # e.g. "no GPU on this machine; nothing to time"
      else
        ran+=("$name")
      fi
    else
      bad+=("$name(exit ${PIPESTATUS[0]})"); rc=1
    fi
  done
  fig "ran ${#ran[@]} of ${#BENCH_RUNS[@]}: ${ran[*]}${notrun:+; not run: ${notrun[*]}}${bad:+; FAILED: ${bad[*]}}"
  return $rc
}

# ---------------------------------------------------------------- 6. PyTorch + the ratio table
stage_torch() {
  local spec name cmd limit rc=0 bad=() ran=()
  for spec in "${TORCH_RUNS[@]}"; do
    IFS='|' read -r name cmd limit <<<"$spec"
    if [ "$MODE" = rehearse ]; then
      $PYTHON $cmd --dry-run --json "$STATE/torch_$name.json" || { bad+=("$name"); rc=1; }
      continue
    fi
    [ "$(left)" -lt 8 ] && { bad+=("$name(no time)"); continue; }
    [ "$limit" -gt "$(($(left) - 5))" ] && limit=$(($(left) - 5))
    echo "== $PYTHON $cmd (at most ${limit} s)"
    if PYTHONUNBUFFERED=1 timeout -k 2 "$limit" $PYTHON $cmd --json "$STATE/torch_$name.json"; then ran+=("$name")
    else bad+=("$name(exit $?)"); rc=1; fi
  done
  if [ "$MODE" = rehearse ]; then  # the optional torch.compile stage's arguments too
    $PYTHON $COMPILE_RUN --dry-run >/dev/null || { bad+=(compile); rc=1; }
  fi
  python3 "$ROOT/scripts/gpu_ratios.py" --state "$STATE" --mode "$MODE" --out "$STATE/ratios.md" \
    --json "$STATE/bench.json" || { bad+=(ratios); rc=1; }
  cat "$STATE/ratios.md" 2>/dev/null
  if [ "$MODE" = rehearse ]; then
    fig "${#TORCH_RUNS[@]} scripts parse their arguments (--dry-run); the ratio table pairs every case${bad:+; FAILED: ${bad[*]}}"
  else
    fig "ran ${ran[*]}; $(grep -c '^| ' "$STATE/ratios.md" 2>/dev/null) table rows${bad:+; FAILED: ${bad[*]}}"
  fi
  return $rc
}

stage_compile() {  # optional: not finishing in the time left is a skip, not a failure
  local limit=$(($(left) - 5))
  echo "== $PYTHON $COMPILE_RUN (at most $limit s)"
  PYTHONUNBUFFERED=1 timeout -k 2 "$limit" $PYTHON $COMPILE_RUN --json "$STATE/torch_compile.json"
  case $? in
    0) ;;
    124|137) fig "torch.compile did not finish in the $limit s left"; return 3 ;;
    *) fig "failed"; return 1 ;;
  esac
  python3 "$ROOT/scripts/gpu_ratios.py" --state "$STATE" --mode "$MODE" --out "$STATE/ratios.md" --json "$STATE/bench.json"
  fig "torch.compile bf16 step: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(", ".join("%.1f ms" % x["ms"] for x in r if x.get("ms")))' "$STATE/torch_compile.json")"
}

# ---------------------------------------------------------------- 7. training
stage_train() {
  if [ "$MC_WITH_NIFTI" != ON ]; then
    fig "built without nifti_clib: mc_prep cannot read the generated scans"
    return 3
  fi
  local W=$STATE/train A=$BUILD_DIR/apps n=$TRAIN_SUBJECTS size=$TRAIN_SIZE epochs=$TRAIN_EPOCHS device=cuda
  [ "$MODE" = rehearse ] && n=24 size=32 device=cpu  # the same commands, smaller, on the CPU
  rm -rf "$W"
  local data=(data.raw.ct_dir="$W/data/ct" data.raw.seg_dir="$W/data/seg"
              data.raw.labels_csv="$W/data/labels.csv" data.cache_dir="$W/cache")
  run_env "$A/mc_prep" --synthetic "$n" --size "$size" --seed 0 --out "$W/data" --no-progress ||
    { fig "mc_prep --synthetic failed"; return 1; }
  run_env "$A/mc_prep" --config configs/demo.yaml "${data[@]}" ||
    { fig "mc_prep --config failed"; return 1; }
  local t0 rc
  t0=$(date +%s)
  run_env "$A/mc_train" --config configs/demo.yaml "${data[@]}" train.device=$device \
    train.epochs=$epochs output.dir="$W/run" 2>&1 | tee "$STATE/logs/train_output.log"
  rc=${PIPESTATUS[0]}
  cp "$W"/run/*.csv "$W"/run/*.jsonl "$STATE/logs/" 2>/dev/null
  local last
  last=$(grep -E "^epoch" "$STATE/logs/train_output.log" | tail -1 | sed -E 's/ +/ /g')
  fig "$n subjects at ${size}^3, $epochs epochs on $device: mc_train exit $rc in $(($(date +%s) - t0)) s; ${last:-no epoch line}"
  return $rc
}

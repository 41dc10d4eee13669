#!/usr/bin/env bash
# Installs what the build and the tests need from Debian's packages (needs root). Quick no-op
# when everything is already there. CUDA is optional: nvcc (/usr/local/cuda) turns it on.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config libgtest-dev libgmock-dev libopenblas-dev libyaml-cpp-dev
      libnifti2-dev zlib1g-dev libopenmpi-dev openmpi-bin
      nlohmann-json3-dev libcli11-dev libxxhash-dev
      python3-torch python3-numpy python3-sklearn python3-nibabel
      libgdcm-dev libgdcm-tools python3-pydicom python3-scipy
      clang-14 libfuzzer-14-dev libclang-rt-14-dev libomp-14-dev)  # scripts/fuzz.sh
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

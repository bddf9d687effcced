#!/usr/bin/env bash
# Builds bytelm and runs the whole test suite (CUDA tests skip themselves without a GPU). Where nvcc is found,
# build/ has the CUDA kernels, so the CPU-only build (what a machine without nvcc gets) is built and tested too,
# first, in build-cpu/: both must stay green. The last lines are the full build's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if grep -q '^CMAKE_CUDA_COMPILER:[A-Z]*=.*nvcc' build/CMakeCache.txt; then
  echo "the CPU-only build (build-cpu/):"
  cmake -S . -B build-cpu -DCMAKE_BUILD_TYPE=Release -DBYTELM_CUDA=OFF >/dev/null
  cmake --build build-cpu -j "$(nproc)" >build-cpu/build.log 2>&1 || { cat build-cpu/build.log; exit 1; }
  ctest --test-dir build-cpu --output-on-failure -j "$(nproc)" >build-cpu/ctest.log 2>&1 ||
    { cat build-cpu/ctest.log; exit 1; }
  grep -E 'tests passed|tests failed' build-cpu/ctest.log
  echo "the full build (build/):"
fi
ctest --test-dir build --output-on-failure -j "$(nproc)"

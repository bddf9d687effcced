#!/usr/bin/env bash
# One device call for the selective scan rewrite (thread a state; bench/NOTES.md, "The selective scan, a thread a
# state"): the CudaMamba* tests, then mamba-10m's training throughput at 16 x 1024 and 32 x 2048 (ssm-10m beside it,
# on the same card), and an op profile of mamba-10m at 16 x 1024. About 2 minutes.
# Built on the dev machine; the binaries travel in .devbin (cp build/bytelm build/bytelm_tests .devbin/), with
# .devlib (the OpenBLAS, libgomp, libgfortran, libquadmath and libstdc++ they link).
#   device run: bash bench/device_mamba_scan.sh     carry: .devbin .devlib
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
timeout 150 .devbin/bytelm_tests --gtest_filter='CudaMamba*' --gtest_output=xml:"$out/cuda_mamba_tests.xml" 2>&1 \
  | tee "$out/cuda_mamba_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|Failure|Expected|Which is|error" | head -40
# the recorded errors of the scan's cases (relative error against the CPU per output and gradient)
grep -o 'name="T=[^"]*" value="[^"]*"' "$out/cuda_mamba_tests.xml" | head -60 > "$out/scan_errors.txt"
for shape in "16 1024" "32 2048"; do
  set -- $shape
  for preset in mamba-10m ssm-10m; do
    .devbin/bytelm bench --device cuda --preset $preset --batch $1 --seq $2 --warmup 3 --steps 10 2>&1 \
      | tee -a "$out/bench.jsonl"
  done
done
.devbin/bytelm bench --device cuda --preset mamba-10m --batch 16 --seq 1024 --warmup 2 --steps 5 --profile \
  > "$out/profile_mamba10m.json" 2> "$out/profile_mamba10m.txt"
head -30 "$out/profile_mamba10m.txt"

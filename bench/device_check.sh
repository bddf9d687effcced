#!/usr/bin/env bash
# One device call that checks the whole tree on a GPU: every CUDA test, then one bench line (bytes/s, ms/step,
# peak memory, MFU) for each family and patching variant: ssm at the issue-3 sizes (seq 2048), mamba-10m,
# transformer-10m and hybrid-10m at 16 x 1024, and the six patching variants at d256 L4, 64 x 1024.
# Staged by bench/stage_device.sh on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_check.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
timeout "${TEST_SECS:-300}" .devbin/bytelm_tests --gtest_filter='Cuda*' > "$out/cuda_tests.log" 2>&1
echo "tests exit $?"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED  \]|\[ bench" "$out/cuda_tests.log" | head -60
line() { grep '^{' | sed "s/^{/{\"what\":\"$1\",/" | tee -a "$out/bench.jsonl" | grep -o '"what":"[^"]*"\|"step_ms":[0-9.]*\|"bytes_per_s":[0-9]*\|"mfu":[0-9.]*\|"peak_gib":[0-9.]*' | paste -sd' '; }
declare -A size=([2m]="256 4 64" [10m]="512 6 32" [100m]="1024 16 16")
for s in 2m 10m 100m; do
  set -- ${size[$s]}
  .devbin/bytelm bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 5 --steps 20 2>&1 | line "ssm-$s"
done
for p in ssm-10m mamba-10m transformer-10m hybrid-10m; do
  .devbin/bytelm bench --device cuda --preset $p --batch 16 --seq 1024 --warmup 3 --steps 10 2>&1 | line "$p 16x1024"
done
for v in mean attn none local soft entropy; do
  [[ $v == none ]] && f="--patch 1 --patching none" || f="--patching $v"
  .devbin/bytelm bench --device cuda --d 256 --layers 4 $f --batch 64 --seq 1024 --warmup 5 --steps 20 2>&1 | line "patching $v"
done

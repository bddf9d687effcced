#!/usr/bin/env bash
# A short device call while tuning: the CUDA tests, bytelm's training throughput at the three sizes
# (seq 2048), and a per-kernel time table (Nsight Compute) at the sizes named in NCU (default "2m 100m").
# Staged by bench/stage_device.sh on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_quick.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
.devbin/bytelm_tests --gtest_filter='Cuda*' 2>&1 | tee "$out/cuda_tests.log" | grep -E "^\[  (PASSED|FAILED) |Failure|Expected|Which is|error" | head -30
# the trainer on the GPU: graph replays with evaluations in between, then the checkpoint evaluated on GPU and CPU
rm -rf /tmp/quick_run
.devbin/bytelm train --device cuda --preset ssm-2m --steps 60 --eval-every 30 --batch 16 --seq 512 --quiet \
  --data data/tinyshakespeare.txt --out /tmp/quick_run 2>&1 | tail -2
for dev in cuda cpu; do .devbin/bytelm eval --device $dev --quiet --ckpt /tmp/quick_run --data data/tinyshakespeare.txt; done
declare -A size=([2m]="256 4 64" [10m]="512 6 32" [100m]="1024 16 16")
for s in 2m 10m 100m; do
  set -- ${size[$s]}
  .devbin/bytelm bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 5 --steps 20 2>&1 | tee -a "$out/bench.jsonl"
done
for s in ${NCU-2m 100m}; do
  set -- ${size[$s]}
  ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv .devbin/bytelm bench --device cuda \
    --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 1 --steps 1 > "$out/ncu_$s.csv" 2> "$out/ncu_$s.err"
  python3 bench/ncu_summary.py "$out/ncu_$s.csv" 2 > "$out/ncu_$s.txt"
  head -${NCU_LINES:-25} "$out/ncu_$s.txt"
done

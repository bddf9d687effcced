#!/usr/bin/env bash
# One device call for the ssm family on the GPU: the CUDA tests, the trainer end to end, then bytelm's training
# throughput and the PyTorch peer's (../shared/peers/ssm_ref.py, carried in .peers) at the three sizes,
# seq 2048, side by side on the same card, and bytelm again after the peers so drift of the card shows.
# With BASE=DIR, the binaries in DIR (say a build of main) are benched too, each size before bytelm's; with
# TUNED=1, bytelm also with --tune-products (each product's kernel the fastest of cuBLASLt's candidates).
# QUICK=1 (a short lease): no trainer run and no second pass after the peers; STEPS timed steps (default 30).
# Staged on the dev machine by bench/stage_device.sh (PEERS=1, and BASE=... for the base binaries).
#   device run: bash bench/device_unpack.sh && bash bench/device_ssm.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
.devbin/bytelm_tests --gtest_filter='Cuda*' 2>&1 | tee "$out/cuda_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|Failure"
steps=${STEPS:-30}
quick=${QUICK:-0}
# the trainer end to end on the GPU: train, checkpoint, then eval the checkpoint on GPU and CPU (one file: a call
# returns at most 8 from $OUT, and with BASE and TUNED this script writes 8)
if [ "$quick" != 1 ]; then
  rm -rf /tmp/gpu_run
  .devbin/bytelm train --device cuda --preset ssm-2m --steps 200 --batch 32 --seq 1024 --eval-every 100 --quiet \
    --data data/tinyshakespeare.txt --out /tmp/gpu_run 2>&1 | tee "$out/trainer.jsonl"
  for dev in cuda cpu; do
    .devbin/bytelm eval --device $dev --quiet --ckpt /tmp/gpu_run --data data/tinyshakespeare.txt 2>&1 | tee -a "$out/trainer.jsonl"
  done
fi
sizes=("256 4 64" "512 6 32" "1024 16 16")
for s in "${sizes[@]}"; do
  set -- $s
  bench=(bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 5 --steps $steps)
  [ -n "${BASE:-}" ] && "$BASE/bytelm" "${bench[@]}" 2>&1 | tee -a "$out/bench_base.jsonl"
  [ "${TUNED:-0}" = 1 ] && .devbin/bytelm "${bench[@]}" --tune-products 2>&1 | tee -a "$out/bench_tuned.jsonl"
  .devbin/bytelm "${bench[@]}" 2>&1 | tee -a "$out/bench.jsonl"
done
for s in "${sizes[@]}"; do
  set -- $s
  timeout 200 python3 .peers/ssm_ref.py --d $1 --layers $2 --batch $3 --seq 2048 --steps $steps 2>&1 | grep '^{' \
    | tee -a "$out/peer.jsonl"
done
# bytelm again after the peers, so drift of the card over the call shows
[ "$quick" = 1 ] && exit 0
for s in "${sizes[@]}"; do
  set -- $s
  .devbin/bytelm bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 5 --steps $steps 2>&1 \
    | tee -a "$out/bench_after.jsonl"
done

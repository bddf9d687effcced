#!/usr/bin/env bash
# One device call for the mamba family on the GPU (issue 4): the CUDA tests, the mamba trainer end to end, then
# bytelm's training throughput for mamba-10m next to ssm-10m at the same batch x seq, an op profile of mamba-10m,
# and the PyTorch peer (../shared/peers/mamba_ref.py, carried in .peers) at mamba-10m's d and L, batch 16 x 1024,
# eager (--compile 0), under a timeout. About 3-4 minutes.
# Staged by bench/stage_device.sh (PEERS=1) on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_mamba.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
timeout 150 .devbin/bytelm_tests --gtest_filter='Cuda*' --gtest_output=xml:"$out/cuda_tests.xml" 2>&1 \
  | tee "$out/cuda_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|Failure|Expected|Which is|error" | head -40
# the mamba trainer end to end on the GPU: train with evaluations (graph replays in between), then the checkpoint
# evaluated on GPU and CPU, and a sample streamed on the GPU
rm -rf /tmp/mamba_run
.devbin/bytelm train --device cuda --preset mamba-1m --steps 100 --batch 16 --seq 512 --eval-every 50 --quiet \
  --data data/tinyshakespeare.txt --out /tmp/mamba_run 2>&1 | tail -2 | tee "$out/train_gpu.json"
for dev in cuda cpu; do
  .devbin/bytelm eval --device $dev --quiet --ckpt /tmp/mamba_run --data data/tinyshakespeare.txt 2>&1 | tee -a "$out/eval.jsonl"
done
.devbin/bytelm generate --device cuda --ckpt /tmp/mamba_run --prompt 'ROMEO:' --bytes 200 --seed 1 > "$out/generate.txt" 2>&1
echo "generate exit $?; $(wc -c < "$out/generate.txt") bytes"
# throughput: mamba-10m and ssm-10m at the same batch x seq, one after the other on the same card
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
# the peer: d 256, 22 layers as mamba-10m; its chunked scan materialises (B, 32, 2d, 16) a chunk and layer
timeout 150 python3 .peers/mamba_ref.py --d 256 --layers 22 --batch 16 --seq 1024 --warmup 2 --steps 5 --compile 0 \
  > "$out/peer.log" 2>&1
echo "peer exit $?"
grep '^{' "$out/peer.log" | tee -a "$out/peer.jsonl" || tail -3 "$out/peer.log"

#!/usr/bin/env bash
# One device call for the transformer and hybrid families on the GPU (issue 5): their CUDA tests, then bytelm's
# training throughput for transformer-10m, hybrid-10m and ssm-10m at batch 32 x seq 2048 one after the other on
# the same card, then the PyTorch peer (../shared/peers/transformer_ref.py, carried in .peers) at transformer-10m's
# d 320, 8 layers, 5 heads, same batch and seq, eager and compiled, each under a timeout. Under 4 minutes.
# Staged by bench/stage_device.sh (PEERS=1) on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_transformer.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
timeout 100 .devbin/bytelm_tests --gtest_filter='CudaTransformer*:CudaAttention*' \
  --gtest_output=xml:"$out/cuda_tests.xml" 2>&1 \
  | tee "$out/cuda_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|Failure|Expected|Which is|error" | head -40
for preset in transformer-10m hybrid-10m ssm-10m; do
  timeout 40 .devbin/bytelm bench --device cuda --preset $preset --batch 32 --seq 2048 --warmup 3 --steps 10 2>&1 \
    | tee -a "$out/bench.jsonl"
done
for compile in 0 1; do
  timeout $((compile ? 100 : 40)) python3 .peers/transformer_ref.py --d 320 --layers 8 --heads 5 --batch 32 \
    --seq 2048 --warmup 3 --steps 10 --compile $compile > "$out/peer_compile$compile.log" 2>&1
  echo "peer compile=$compile exit $?"
  grep '^{' "$out/peer_compile$compile.log" | tee -a "$out/peer.jsonl" || tail -3 "$out/peer_compile$compile.log"
done

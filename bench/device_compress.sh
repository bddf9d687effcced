#!/usr/bin/env bash
# Issue 6's table in one device call: train the best checkpoint the call's time allows on the benchmark corpus
# (../shared/data: debdocs-en train), score it on the validation file and on the Portuguese handbook, then
# bench/compress_table.sh on the validation file (bytelm on the GPU against gzip -9, bzip2 -9, xz -9, zstd -19).
#
# Staged by bench/stage_device.sh (DATA=1) on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && SECS=240 bash bench/device_compress.sh     carry: .devpack
# Environment: SECS [240] training seconds; PRESET [ssm-10m]; BATCH [32]; SEQ [2048]; STEPS [30000] (the cosine
# spans STEPS: set it near the steps that fit in SECS, ~8.9 ms a step for ssm-10m at 32 x 2048 on an H100).
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
SECS="${SECS:-240}" PRESET="${PRESET:-ssm-10m}" BATCH="${BATCH:-32}" SEQ="${SEQ:-2048}" STEPS="${STEPS:-30000}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
data=/tmp/bytelm_data
bash bench/unpack_corpus.sh "$data" || exit 1
run=/tmp/best_run; rm -rf "$run"
timeout $((SECS + 120)) .devbin/bytelm train --device cuda --preset "$PRESET" --batch "$BATCH" --seq "$SEQ" \
  --steps "$STEPS" --eval-every "$STEPS" --max-seconds "$SECS" --quiet --data "$data/debdocs-en-train.txt" \
  --val "$data/debdocs-en-val.txt" --out "$run" 2> "$out/train.log" | tee "$out/train.json"
cp "$run/metrics.jsonl" "$out/metrics.jsonl"
for f in debdocs-en-val handbook-pt; do
  echo "{\"file\":\"$f.txt\",\"eval\":$(.devbin/bytelm eval --device cuda --quiet --ckpt "$run" --data "$data/$f.txt" --seq "$SEQ")}" \
    | tee -a "$out/eval.jsonl"
done
DEVICE=cuda OUT="$out" BYTELM=.devbin/bytelm EVAL=0 bash bench/compress_table.sh "$run" "$data/debdocs-en-val.txt"

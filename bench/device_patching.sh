#!/usr/bin/env bash
# Issue 4's patching variants on the GPU in one device call: the CUDA patching tests, training throughput of each
# variant (bytelm bench, d 256, 4 layers, seq 1024, batch 64, one JSON line each), then the patching study:
# `bytelm compare` trains the six for the same wall-clock each on the benchmark corpus (debdocs-en,
# ../shared/data/README.md) and writes the table and compare.jsonl.
#
# Staged by bench/stage_device.sh (DATA=1) on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_patching.sh     carry: .devpack
#
# Environment (defaults in brackets):
#   SECS [60]        training seconds of each variant in the study; six variants plus their leak checks and
#                    evaluations, after the tests and the benches (about a minute), must fit one call's 10 minutes:
#                    keep SECS <= 70. The 10 minutes a variant is SECS=600 over six calls (STUDY=name).
#   STUDY ["mean attn none local soft entropy"]  the variants the study trains, in order
#   BATCH [64], SEQ [1024]  the study's and the benches' batch and window
#   CHECKS [1]       0 skips the tests and the benches (bench/device_runs.sh, which runs one variant a GPU)
#   WORK [/tmp]      where the checkpoints go (its patching_study/ folder is replaced)
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
SECS="${SECS:-60}" BATCH="${BATCH:-64}" SEQ="${SEQ:-1024}" STUDY="${STUDY:-mean attn none local soft entropy}"
CHECKS="${CHECKS:-1}" study="${WORK:-/tmp}/patching_study"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

# A variant's config keys: patch 2 (the ssm-2m preset's), patch 1 for none; and its bench flags.
keys() { case "$1" in none) echo "patch=1,patching=none" ;; *) echo "patching=$1" ;; esac; }
flags() { case "$1" in none) echo "--patch 1 --patching none" ;; *) echo "--patching $1" ;; esac; }
if [[ $CHECKS == 1 ]]; then
  # The kernels and models of the patchings (soft, entropy, local's short scans, attn) against the CPU.
  .devbin/bytelm_tests --gtest_filter='CudaPatching*:CudaLayers.DiagScan*:CudaLayers.PatchAttn:CudaModel.PatchingLocal*:CudaModel.AttnPooling*' \
    2>&1 | tee "$out/cuda_patching_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|Failure"
  for v in mean attn none local soft entropy; do
    .devbin/bytelm bench --device cuda --preset ssm-2m --d 256 --layers 4 $(flags $v) --batch "$BATCH" --seq "$SEQ" \
      --warmup 5 --steps 30 2>&1 | sed "s/^{/{\"variant\":\"$v\",/" | tee -a "$out/bench_patching.jsonl"
  done
fi
# The study, on the corpus unpacked outside the repo copy and checked against the README's sha256.
data=/tmp/bytelm_data
bash bench/unpack_corpus.sh "$data" || exit 1
runs=()
for v in $STUDY; do runs+=(--run "$v=ssm-2m,d=256,layers=4,seq=$SEQ,batch=$BATCH,$(keys $v)"); done
rm -rf "$study"
.devbin/bytelm compare --device cuda --data "$data/debdocs-en-train.txt" --val "$data/debdocs-en-val.txt" \
  --out "$study" --seconds "$SECS" "${runs[@]}" 2>&1 | tee "$out/patching_study.txt"
cp "$study/compare.jsonl" "$out/patching_study.jsonl"

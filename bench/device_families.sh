#!/usr/bin/env bash
# Issue 5's table in one device call: transformer-10m, hybrid-10m and ssm-10m trained for the same wall-clock on
# the benchmark corpus (`bytelm compare`, which also leak-checks each), then each checkpoint scored on the whole
# validation file and on the Portuguese handbook. One JSON line a family in $OUT/families.jsonl, and a table.
#
# Staged by bench/stage_device.sh (DATA=1) on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && SECS=120 bash bench/device_families.sh     carry: .devpack
# Environment: SECS [120] training seconds a family (the issue asks for 600: one family a run, RUNS=ssm=ssm-10m
#   SECS=600, through bench/device_bg.sh, which outlives a call; NOTES.md; one call holds ~3 x 150 s);
#   BATCH [32], SEQ [2048]; RUNS [transformer=transformer-10m hybrid=hybrid-10m ssm=ssm-10m];
#   WORK [/tmp] where the checkpoints go (its families/ folder is replaced).
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
SECS="${SECS:-120}" BATCH="${BATCH:-32}" SEQ="${SEQ:-2048}"
RUNS="${RUNS:-transformer=transformer-10m hybrid=hybrid-10m ssm=ssm-10m}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
data=/tmp/bytelm_data
bash bench/unpack_corpus.sh "$data" || exit 1
dir="${WORK:-/tmp}/families"; rm -rf "$dir"
args=()
for r in $RUNS; do args+=(--run "$r,batch=$BATCH,seq=$SEQ"); done
.devbin/bytelm compare --device cuda --quiet --data "$data/debdocs-en-train.txt" --val "$data/debdocs-en-val.txt" \
  --out "$dir" --seconds "$SECS" "${args[@]}" 2> "$out/compare.log" | tee "$out/compare.txt"
cp "$dir/compare.jsonl" "$out/compare.jsonl"
: > "$out/families.jsonl"
for r in $RUNS; do
  name="${r%%=*}"
  [[ -d "$dir/$name" ]] || continue
  val=$(.devbin/bytelm eval --device cuda --quiet --ckpt "$dir/$name" --data "$data/debdocs-en-val.txt" --seq "$SEQ")
  pt=$(.devbin/bytelm eval --device cuda --quiet --ckpt "$dir/$name" --data "$data/handbook-pt.txt" --seq "$SEQ")
  echo "{\"name\":\"$name\",\"commit\":\"$(.devbin/bytelm --version | cut -d' ' -f2)\",\"val\":$val,\"pt\":$pt}" \
    | tee -a "$out/families.jsonl"
done

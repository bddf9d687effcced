#!/usr/bin/env bash
# One device call for the ssm family on the GPU: the CUDA tests, then bytelm's training throughput and the PyTorch
# peer's (../shared/peers/ssm_ref.py, carried in .peers) at the three sizes, seq 2048, alternating size by
# size on the same card. The figures the issue asks for come first at each size, so a lease cut short still returns
# them; with BASE="DIR ..." the bytelm in each DIR (say a build of main, or of a branch's parts; DIR@NAME=VALUE runs
# it under that environment setting), into bench_base.jsonl, each line with an "entry" key: the first entry right
# after them at each size, then, once all three sizes have their figures, the others size by size, each size after
# bytelm again (entry .devbin there, so the card's drift between the passes shows; bench/ssm_table.py compares an
# entry with bytelm's nearest run before it). Then the optional passes: with TUNED=1, bytelm with --tune-products
# (each product's kernel the fastest of cuBLASLt's candidates); then (unless QUICK=1) the trainer end to end and
# bytelm again after everything, so drift of the card shows. STEPS timed steps a bench (default 30). Every file is
# written as it goes, under $OUT, so a call cut short returns what ran.
# Staged on the dev machine by bench/stage_device.sh (PEERS=1, and BASE=... for the base binary).
#   device run: bash bench/device_unpack.sh && bash bench/device_ssm.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__)'
} 2>&1 | tee "$out/gpu.txt"
timeout 300 .devbin/bytelm_tests --gtest_filter='Cuda*' 2>&1 | tee "$out/cuda_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|Failure"
steps=${STEPS:-30}
sizes=("256 4 64" "512 6 32" "1024 16 16")
bench_one() {  # bench_one ENTRY FILE D LAYERS BATCH [FLAGS...]: ENTRY is DIR or DIR@NAME=VALUE[,NAME=VALUE]
  local entry=$1 file=$2 d=$3 layers=$4 batch=$5; shift 5
  local bin=${entry%%@*} settings=""
  [[ $entry == *@* ]] && settings=$(echo "${entry#*@}" | tr , ' ')
  env $settings timeout 120 "$bin/bytelm" bench --device cuda --d $d --layers $layers --patch 2 --batch $batch \
    --seq 2048 --warmup 5 --steps $steps "$@" 2>&1 | sed "s|^{|{\"entry\": \"$entry\", |" | tee -a "$out/$file"
}
bench_all() {  # bench_all BINARY_DIR FILE [FLAGS...]: bytelm at the three sizes
  local bin=$1 file=$2 s; shift 2
  for s in "${sizes[@]}"; do bench_one "$bin" "$file" $s "$@"; done
}
base=(${BASE:-})
for s in "${sizes[@]}"; do  # first pass: the figures, and the first BASE entry beside them
  bench_one .devbin bench.jsonl $s
  set -- $s
  timeout 200 python3 .peers/ssm_ref.py --d $1 --layers $2 --batch $3 --seq 2048 --steps $steps 2>&1 | grep '^{' \
    | tee -a "$out/peer.jsonl"
  [ ${#base[@]} -gt 0 ] && bench_one "${base[0]}" bench_base.jsonl $s
done
for s in "${sizes[@]}"; do  # second pass: the other BASE entries, each size after bytelm again
  [ ${#base[@]} -gt 1 ] || break
  bench_one .devbin bench_base.jsonl $s
  for entry in "${base[@]:1}"; do bench_one "$entry" bench_base.jsonl $s; done
done
python3 bench/ssm_table.py "$out"  # the table, and bytelm against each BASE entry
[ "${TUNED:-0}" = 1 ] && bench_all .devbin bench_tuned.jsonl --tune-products
[ "${QUICK:-0}" = 1 ] && exit 0
# the trainer end to end on the GPU: train, checkpoint, then eval the checkpoint on GPU and CPU (one file: a call
# returns at most 8 from $OUT, and with BASE and TUNED this script writes 8)
rm -rf /tmp/gpu_run
.devbin/bytelm train --device cuda --preset ssm-2m --steps 200 --batch 32 --seq 1024 --eval-every 100 --quiet \
  --data data/tinyshakespeare.txt --out /tmp/gpu_run 2>&1 | tee "$out/trainer.jsonl"
for dev in cuda cpu; do
  .devbin/bytelm eval --device $dev --quiet --ckpt /tmp/gpu_run --data data/tinyshakespeare.txt 2>&1 | tee -a "$out/trainer.jsonl"
done
bench_all .devbin bench_after.jsonl

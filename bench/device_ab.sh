#!/usr/bin/env bash
# One device call while tuning the ssm family's step: the CUDA tests, the trainer end to end, bytelm's training
# throughput at the three sizes (seq 2048, patch 2), an Nsight Compute kernel table (time, and the DRAM
# bytes and bandwidth of each kernel) at the sizes in NCU (default "2m 100m"), and op by op with each matrix product
# by shape (bench --profile) at the sizes in PROFILE (default "100m").
# - BASE=DIR (binaries of the commit to compare against, say main's, built the same way and carried too; or
#   several folders, "DIR1 DIR2"): the same benches and tables for those binaries in this call, each size base(s)
#   then new, so that the ratios come from one card.
# - VARIANTS="NAME=VALUE ...": .devbin again under each environment setting (a BASE entry may carry its own,
#   DIR@NAME=VALUE).
# - GEMM=1: first `bytelm bench-gemm` (the own sm90 products against cuBLAS, bench/NOTES_gemm.md).
# - NCU_DETAIL=REGEX: Nsight's full sections for those kernels.
# - BENCH, NCU, PROFILE: the sizes of each pass (BENCH="2m 10m 100m" by default; "" skips a pass).
# Every step has a time limit, so a kernel that hangs costs minutes, not the call. Everything comes back in
# ab_all.tar (the summaries beside it), since a call returns at most 8 files.
# Staged on the dev machine by bench/stage_device.sh (BASE=... for the base binaries).
#   device run: bash bench/device_unpack.sh && BASE=.devbin_base bash bench/device_ab.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# the tests, with every recorded error (expect_close's properties) in the XML; the own products' (CudaGemm*) in a
# process of their own first, so that a kernel that traps cannot take the other tests' CUDA context with it
# (TESTS=0 skips them, for a call that has run them already)
if [ "${TESTS:-1}" = 1 ]; then
  timeout 300 .devbin/bytelm_tests --gtest_filter='CudaGemm*' --gtest_output=xml:"$out/cuda_gemm_tests.xml" \
    > "$out/cuda_tests.log" 2>&1
  timeout 300 .devbin/bytelm_tests --gtest_filter='Cuda*:-CudaGemm*' --gtest_output=xml:"$out/cuda_tests.xml" \
    >> "$out/cuda_tests.log" 2>&1
  grep -E "^\[  (PASSED|FAILED) |FAILED|Failure|Expected|Which is|error" "$out/cuda_tests.log" | head -40
fi
[ "${GEMM:-0}" = 1 ] && timeout 300 .devbin/bytelm bench-gemm --iters 20 > "$out/gemm_bench.jsonl" 2>&1
# the trainer end to end: graph replays with evaluations in between, then the checkpoint evaluated on GPU and CPU
# (TRAIN=0 skips it)
if [ "${TRAIN:-1}" = 1 ]; then
  rm -rf /tmp/ab_run
  timeout 180 .devbin/bytelm train --device cuda --preset ssm-2m --steps 60 --eval-every 30 --batch 16 --seq 512 \
    --quiet --data data/tinyshakespeare.txt --out /tmp/ab_run 2>&1 | tail -2 | tee "$out/train.txt"
  for dev in cuda cpu; do
    timeout 120 .devbin/bytelm eval --device $dev --quiet --ckpt /tmp/ab_run --data data/tinyshakespeare.txt |
      tee -a "$out/eval.jsonl"
  done
fi
declare -A size=([2m]="256 4 64" [10m]="512 6 32" [100m]="1024 16 16")
bins=(.devbin)
[ -n "${BASE:-}" ] && bins=($BASE .devbin)  # BASE may name several folders: "A B" benches A, B, then .devbin
# VARIANTS="NAME=VALUE ...": .devbin again under each environment setting (an experiment's switch; several joined
# by commas, A=1,B=2), as .devbin@NAME=VALUE; its files are named with the setting
for v in ${VARIANTS:-}; do bins+=(".devbin@$v"); done
dir_of() { echo "${1%%@*}"; }                                            # ENTRY's binaries
env_of() { [[ $1 == *@* ]] && echo "${1#*@}" | tr , ' '; }              # its settings, if any
tag_of() { local t=${1#.}; t=${t//[@,]/_}; echo "${t//=/_}"; }           # its part of a file name
for s in ${BENCH-2m 10m 100m}; do  # BENCH="": no benches (a call that only profiles)
  set -- ${size[$s]}
  for bin in "${bins[@]}"; do
    echo -n "$bin $s: "
    env $(env_of $bin) timeout 120 $(dir_of $bin)/bytelm bench --device cuda --d $1 --layers $2 --patch 2 \
      --batch $3 --seq 2048 --warmup 5 --steps 20 2>&1 | tee -a "$out/bench_$(tag_of $bin).jsonl"
  done
done
for s in ${NCU-2m 100m}; do
  set -- ${size[$s]}
  for bin in "${bins[@]}"; do
    name="ncu_$(tag_of $bin)_$s"
    env $(env_of $bin) timeout 240 ncu --clock-control none --cache-control none \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum --csv $(dir_of $bin)/bytelm \
      bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 1 --steps 1 \
      > "$out/$name.csv" 2> "$out/$name.err"
    python3 bench/ncu_summary.py "$out/$name.csv" 2 > "$out/$name.txt"
    echo "== $bin $s"
    head -${NCU_LINES:-30} "$out/$name.txt"
  done
done
for s in ${PROFILE-100m}; do
  set -- ${size[$s]}
  echo "== profile $s"
  timeout 240 .devbin/bytelm bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 3 \
    --steps 5 --profile > "$out/profile_$s.txt" 2>&1
  head -${PROFILE_LINES:-40} "$out/profile_$s.txt"
done
# Nsight's full sections (throughput, stalls, occupancy) for the kernels NCU_DETAIL names (a regex), at 10m, for
# each entry of NCU_DETAIL_BINS [.devbin]: the first NCU_DETAIL_COUNT [8] matching launches (after NCU_DETAIL_SKIP
# [0] of them), as text
if [ -n "${NCU_DETAIL:-}" ]; then
  set -- ${size[10m]}
  for bin in ${NCU_DETAIL_BINS:-.devbin}; do
    name="ncu_detail_$(tag_of $bin)_10m.txt"
    env $(env_of $bin) timeout 300 ncu --set full -k "regex:$NCU_DETAIL" --launch-skip "${NCU_DETAIL_SKIP:-0}" \
      -c "${NCU_DETAIL_COUNT:-8}" --page details $(dir_of $bin)/bytelm bench --device cuda --d $1 --layers $2 \
      --patch 2 --batch $3 --seq 2048 --warmup 1 --steps 1 > "$out/$name" 2>&1
    echo "== details $bin"
    grep -E "^  [a-z_]+.*\(|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per" \
      "$out/$name" | head -${NCU_DETAIL_LINES:-60}
  done
fi
# A call brings back at most 8 files: everything goes into one tarball as well, and only the summaries stay beside it
tar -C "$out" -cf /tmp/ab_all.tar . && mv /tmp/ab_all.tar "$out/ab_all.tar"
find "$out" -maxdepth 1 -type f ! -name ab_all.tar ! -name gpu.txt ! -name cuda_tests.log ! -name 'bench_*.jsonl' \
  -delete

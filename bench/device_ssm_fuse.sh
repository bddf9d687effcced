#!/usr/bin/env bash
# One device call for the ssm-fuse branch (fewer memory passes in the ssm step: the SwiGLU residual in the W3
# product's epilogue through cuBLASLt, no padded W12, the gradient-norm sums on 16-byte packs): the CUDA tests,
# bytelm's training throughput at the three sizes (seq 2048, patch 2), and an Nsight Compute kernel table
# at 2m and 100m. With BASE=DIR (binaries of the commit to compare against, say main's, built the same way and
# carried too), the same benches run for those binaries in this call, each size base then branch, so that the
# ratios come from one card.
# Built on the dev machine; the binaries travel in .devbin (cp build/bytelm build/bytelm_tests .devbin/), with
# .devlib (the OpenBLAS, libgomp, libgfortran, libquadmath and libstdc++ they link).
#   device run: bash bench/device_ssm_fuse.sh               carry: .devbin .devlib
#           or: BASE=.devbin_main bash bench/device_ssm_fuse.sh    carry: .devbin .devbin_main .devlib
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# the tests, with every recorded error (expect_close's properties) in the XML
.devbin/bytelm_tests --gtest_filter='Cuda*' --gtest_output=xml:"$out/cuda_tests.xml" 2>&1 | tee "$out/cuda_tests.log" |
  grep -E "^\[  (PASSED|FAILED) |FAILED|Failure|Expected|Which is|error" | head -40
# the trainer end to end: graph replays with evaluations in between, then the checkpoint evaluated on GPU and CPU
rm -rf /tmp/fuse_run
.devbin/bytelm train --device cuda --preset ssm-2m --steps 60 --eval-every 30 --batch 16 --seq 512 --quiet \
  --data data/tinyshakespeare.txt --out /tmp/fuse_run 2>&1 | tail -2 | tee "$out/train.txt"
for dev in cuda cpu; do
  .devbin/bytelm eval --device $dev --quiet --ckpt /tmp/fuse_run --data data/tinyshakespeare.txt | tee -a "$out/eval.jsonl"
done
declare -A size=([2m]="256 4 64" [10m]="512 6 32" [100m]="1024 16 16")
bins=(.devbin)
[ -n "${BASE:-}" ] && bins=("$BASE" .devbin)
for s in 2m 10m 100m; do
  set -- ${size[$s]}
  for bin in "${bins[@]}"; do
    echo -n "$bin $s: "
    $bin/bytelm bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 5 --steps 20 2>&1 |
      tee -a "$out/bench_${bin#.}.jsonl"
  done
done
for s in 2m 100m; do
  set -- ${size[$s]}
  for bin in "${bins[@]}"; do
    name="ncu_${bin#.}_$s"
    ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv $bin/bytelm bench \
      --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 1 --steps 1 > "$out/$name.csv" \
      2> "$out/$name.err"
    python3 bench/ncu_summary.py "$out/$name.csv" 2 > "$out/$name.txt"
    echo "== $bin $s"
    head -${NCU_LINES:-30} "$out/$name.txt"
  done
done

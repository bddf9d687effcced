#!/usr/bin/env bash
# Nsight Compute's full report on the own sm90 products at ssm-10m's SwiGLU shape (M 32768, S 1376, K 512), to name
# what stalls the fused epilogues (bench/NOTES_gemm.md, lead 1): the plain pingpong product of g alone, the fused
# forward (g and m) pingpong, and the fused backward (dg) cooperative, one launch each, all from
# `bytelm bench-gemm --shapes 32768x2752x512 --warmup 2 --iters 3`.
#
# bench-gemm launches each variant warmup + iters = 5 times a shape; the fused ones run at the three presets' widths
# in order (2m, 10m, 100m), so the 10m launches of a fused variant are its 6th to 10th: skip 6, take the 7th.
# Kernels are matched by their mangled names: gemm_tn_kernel<BN, Fuse (0 plain, 1 swiglu, 2 backward), pingpong>.
#
# Staged by bench/stage_device.sh on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && OUT=$OUT bash bench/device_gemm_ncu.sh     carry: .devpack
# Writes OUT/ncu_<name>.txt (the details page of each report) and prints the lines that say the most.
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
bench=(.devbin/bytelm bench-gemm --shapes 32768x2752x512 --warmup 2 --iters 3)
profile() {  # name mangled-pattern launches-to-skip
  ncu --kernel-name-base mangled -k "regex:$2" --launch-skip "$3" --launch-count 1 --set full --clock-control none -f -o "/tmp/ncu_$1" \
    "${bench[@]}" > "$out/ncu_$1.log" 2>&1
  ncu --import "/tmp/ncu_$1.ncu-rep" --page details > "$out/ncu_$1.txt" 2>&1
  echo "== $1"
  local keys="Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|L2 Cache Throughput"
  keys+="|Registers Per|Warp Cycles Per Issued|Issue Slots Busy"
  grep -E "^ +($keys)" "$out/ncu_$1.txt" | head -12
}
profile plain_pingpong '.*gemm_tn_kernelILi128ELNS0_4FuseE0ELb1E.*' 1
profile swiglu_pingpong '.*gemm_tn_kernelILi128ELNS0_4FuseE1ELb1E.*' 6
profile swiglu_backward '.*gemm_tn_kernelILi128ELNS0_4FuseE2ELb0E.*' 6

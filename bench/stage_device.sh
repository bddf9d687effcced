#!/usr/bin/env bash
# Stages what a device call carries, on the dev machine, into .devpack/ (git-ignored; carry: .devpack): the CUDA
# build's binaries (build/, stripped) and the shared libraries they link that the GPU machine lacks (OpenBLAS,
# libgomp, libgfortran, libquadmath, libstdc++), each an xz tarball, so the call stays far under its 64 MiB.
# With BASE=DIR, DIR's bytelm goes in too, as .devbin_base (say a build of main, for A/B benches); with BASE2=DIR,
# a second one as .devbin_base2 (an intermediate commit, for an A/B/C), BASE3=DIR a third as .devbin_base3.
# With PEERS=1, ../shared/peers goes in as .peers/ (the PyTorch programs bytelm is measured against).
# With DATA=1, the benchmark corpus (../shared/data/*.xz) goes in as .data/ (bench/unpack_corpus.sh reads it).
# On the device, bench/device_unpack.sh puts them back (.devbin, .devlib, .devbin_base, .peers, .data).
#   bash bench/stage_device.sh            then  device run: bash bench/device_unpack.sh && ...    carry: .devpack
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .devpack && mkdir -p .devpack
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pack() {  # pack NAME DIR FILES...: FILES into DIR/ inside .devpack/NAME.tar.xz (executables stripped)
  local name=$1 dir=$2; shift 2
  mkdir -p "$tmp/$name/$dir"
  cp -L "$@" "$tmp/$name/$dir/"
  [[ $dir == .devbin* ]] && strip "$tmp/$name/$dir/"*
  tar -C "$tmp/$name" -cf - "$dir" | xz -T2 -6 > ".devpack/$name.tar.xz"
}
pack bin .devbin build/bytelm build/bytelm_tests
[ -n "${BASE:-}" ] && pack bin_base .devbin_base "$BASE/bytelm"
[ -n "${BASE2:-}" ] && pack bin_base2 .devbin_base2 "$BASE2/bytelm"
[ -n "${BASE3:-}" ] && pack bin_base3 .devbin_base3 "$BASE3/bytelm"
libs=()
for l in libopenblas.so.0 libgomp.so.1 libgfortran.so.5 libquadmath.so.0 libstdc++.so.6; do
  libs+=("/lib/x86_64-linux-gnu/$l")
done
pack lib .devlib "${libs[@]}"
if [ "${PEERS:-0}" = 1 ]; then
  mkdir -p .devpack/.peers && cp ../shared/peers/*.py .devpack/.peers/
fi
if [ "${DATA:-0}" = 1 ]; then
  mkdir -p .devpack/.data
  cp ../shared/data/debdocs-en-train.txt.xz ../shared/data/debdocs-en-val.txt.xz ../shared/data/handbook-pt.txt.xz \
    .devpack/.data/
fi
du -sh .devpack

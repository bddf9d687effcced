#!/usr/bin/env bash
# Op-by-op time shares of a GPU training step at two of the sizes (bytelm bench --profile).
# Staged by bench/stage_device.sh on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_profile.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
for s in "256 4 64" "1024 16 16"; do
  set -- $s
  .devbin/bytelm bench --device cuda --d $1 --layers $2 --patch 2 --batch $3 --seq 2048 --warmup 3 --steps 10 --profile \
    2>&1 | tee -a "$out/profile.txt"
done

#!/usr/bin/env bash
# On the device machine: unpacks what bench/stage_device.sh staged in .devpack/ into the repo root (.devbin,
# .devlib, .devbin_base, .peers, .data), with Python's lzma (the GPU machine may lack xz).
set -euo pipefail
cd "$(dirname "$0")/.."
for f in .devpack/*.tar.xz; do
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(".")' "$f"
done
for dir in .data .peers; do
  if [ -d ".devpack/$dir" ]; then rm -rf "$dir" && cp -r ".devpack/$dir" "$dir"; fi
done
ls -d .devbin* .devlib .peers .data 2>/dev/null | paste -sd" " || true

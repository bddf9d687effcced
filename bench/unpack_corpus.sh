#!/usr/bin/env bash
# Unpacks the benchmark corpus from .data/*.xz (staged from ../shared/data, see its README) into DIR (default
# /tmp/bytelm_data) and checks every file against the README's sha256: a wrong file would make every number
# measured on it meaningless. Uses xz, or Python's lzma where xz is missing (the GPU machine may lack it).
#   bash bench/unpack_corpus.sh [DIR]     then read DIR/debdocs-en-train.txt, DIR/debdocs-en-val.txt, DIR/handbook-pt.txt
set -euo pipefail
data="${1:-/tmp/bytelm_data}"
mkdir -p "$data"
declare -A sha=(
  [debdocs-en-train.txt]=43fad33ad863fa7d3301f69beb8650c78ea96b5b3565b9d2664322e783f73c81
  [debdocs-en-val.txt]=b8a18c3d413c8cf18b52ca77ce9c81d86459a396e03ed0bd47f904e8d6f1e9e8
  [handbook-pt.txt]=ffdd0ce14ce1ad717cb5dede4eda07ea55a1cee6749237a40154b57b60a0f2bc
)
for name in "${!sha[@]}"; do
  [[ -f ".data/$name.xz" ]] || continue  # stage only what a call needs
  # already there and right (bench/device_runs.sh unpacks once before its runs start, and they read it at once)
  echo "${sha[$name]}  $data/$name" | sha256sum -c --quiet - > /dev/null 2>&1 && continue
  if command -v xz > /dev/null; then
    xz -dc ".data/$name.xz" > "$data/$name"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      ".data/$name.xz" "$data/$name"
  fi
  echo "${sha[$name]}  $data/$name" | sha256sum -c --quiet - \
    || { echo "$data/$name does not match ../shared/data/README.md; stage .data again" >&2; exit 1; }
done

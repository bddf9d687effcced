#!/usr/bin/env bash
# bytelm compress / decompress against gzip -9, bzip2 -9, xz -9 and zstd -19 on one file: bits per byte, MB/s each
# way, every round trip checked with cmp. Writes a markdown table and one JSON line a row.
#
#   bash bench/compress_table.sh CKPT [FILE]
#
# FILE defaults to the benchmark's validation file, unpacked into .data/ (ignored by git) from
# ../shared/data/debdocs-en-val.txt.xz, or from .data/debdocs-en-val.txt.xz where ../shared is absent (the GPU
# machine: carry .data). Environment:
#   DEVICE   cpu (default), cuda, cuda-fp32 or cuda-tf32: where bytelm's model runs
#   BLOCK    bytes a block (default 65536 on cpu, 8192 on cuda: a 2 MiB file then fills 256 streams)
#   STREAMS  blocks stepped together (default: bytelm's, 8 on cpu, 256 on cuda)
#   BYTELM   the binary (default build/bytelm, or .devbin/bytelm when that exists)
#   EVAL     1 (default): also run `bytelm eval` on the file and put its bpb in bytelm's JSON line
#   OUT      where the table (compress_table.md) and the JSON lines (compress_table.jsonl) go (default /tmp/bytelm_out)
# A tool that is not installed gets a row saying so. Example, on the GPU machine:
#   bash bench/device_unpack.sh && DEVICE=cuda bash bench/compress_table.sh runs/best/checkpoint.safetensors
#   (carry: .devpack runs/best)
set -euo pipefail
ckpt="${1:?usage: bash bench/compress_table.sh CKPT [FILE]}"
file="${2:-}"
device="${DEVICE:-cpu}"
if [[ -z "${BLOCK:-}" ]]; then [[ "$device" == cpu ]] && BLOCK=65536 || BLOCK=8192; fi
bytelm="${BYTELM:-}"
if [[ -z "$bytelm" ]]; then [[ -x .devbin/bytelm ]] && bytelm=.devbin/bytelm || bytelm=build/bytelm; fi
[[ -d .devlib ]] && export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"
mkdir -p "$out" .data
commit="$("$bytelm" --version | cut -d' ' -f2)"  # the binary's own commit (a device copy's .git may be stale)

if [[ -z "$file" ]]; then
  file=.data/debdocs-en-val.txt
  if [[ ! -s "$file" ]]; then
    src=../shared/data/debdocs-en-val.txt.xz
    [[ -f "$src" ]] || src=.data/debdocs-en-val.txt.xz
    [[ -f "$src" ]] || { echo "no validation file: need ../shared/data/debdocs-en-val.txt.xz or .data/debdocs-en-val.txt.xz" >&2; exit 1; }
    xz -dc "$src" > "$file.tmp" && mv "$file.tmp" "$file"
  fi
fi
[[ -s "$file" ]] || { echo "$file: missing or empty" >&2; exit 1; }
bytes=$(stat -c %s "$file")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
table="$out/compress_table.md"
jsonl="$out/compress_table.jsonl"
: > "$jsonl"
{
  echo "$(basename "$file"), $bytes bytes; bytelm checkpoint $ckpt on $device, --block $BLOCK${STREAMS:+ --streams $STREAMS}; commit $commit"
  echo
  echo "| compressor | bytes | bits/byte | compress MB/s | decompress MB/s | round trip |"
  echo "| --- | --- | --- | --- | --- | --- |"
} > "$table"

# row NAME COMPRESSED_BYTES T_COMPRESS T_DECOMPRESS ROUNDTRIP [EXTRA_JSON]
row() {
  local name="$1" size="$2" tc="$3" td="$4" ok="$5" extra="${6:-}"
  local bpb cmbs dmbs
  bpb=$(awk -v s="$size" -v n="$bytes" 'BEGIN { printf "%.4f", 8 * s / n }')
  cmbs=$(awk -v t="$tc" -v n="$bytes" 'BEGIN { printf "%.3f", n / t / 1e6 }')
  dmbs=$(awk -v t="$td" -v n="$bytes" 'BEGIN { printf "%.3f", n / t / 1e6 }')
  echo "| $name | $size | $bpb | $cmbs | $dmbs | $ok |" >> "$table"
  printf '{"compressor":"%s","file":"%s","bytes":%s,"compressed":%s,"bpb":%s,"compress_MBps":%s,"decompress_MBps":%s,"roundtrip":%s,"commit":"%s"%s}\n' \
    "$name" "$(basename "$file")" "$bytes" "$size" "$bpb" "$cmbs" "$dmbs" "$([[ $ok == ok ]] && echo true || echo false)" \
    "$commit" "$extra" | tee -a "$jsonl"
}

# measure NAME COMPRESS_CMD DECOMPRESS_CMD: each reads stdin and writes stdout
measure() {
  local name="$1" c="$2" d="$3" t0 t1 t2 ok=ok
  t0=$(now); bash -c "$c" < "$file" > "$work/z"; t1=$(now)
  bash -c "$d" < "$work/z" > "$work/back"; t2=$(now)
  cmp -s "$file" "$work/back" || ok=FAILED
  row "$name" "$(stat -c %s "$work/z")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
    "$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}')" "$ok"
}

# bytelm through files (its progress and report on stderr, kept in the log)
t0=$(now)
"$bytelm" compress --ckpt "$ckpt" --device "$device" --block "$BLOCK" ${STREAMS:+--streams "$STREAMS"} --force \
  "$file" "$work/z" 2> >(tee "$out/bytelm_compress.log" >&2)
t1=$(now)
"$bytelm" decompress --ckpt "$ckpt" --force "$work/z" "$work/back" 2> >(tee "$out/bytelm_decompress.log" >&2)
t2=$(now)
ok=ok; cmp -s "$file" "$work/back" || ok=FAILED
extra=",\"device\":\"$device\",\"block\":$BLOCK,\"ckpt\":\"$ckpt\""
if [[ "${EVAL:-1}" == 1 ]]; then
  eval_bpb=$("$bytelm" eval --quiet --device "$device" --ckpt "$ckpt" --data "$file" | sed -n 's/.*"bpb":\([0-9.eE+-]*\).*/\1/p')
  extra="$extra,\"eval_bpb\":${eval_bpb:-null}"
fi
row "bytelm ($device)" "$(stat -c %s "$work/z")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
  "$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}')" "$ok" "$extra"

for tool in "gzip -9" "bzip2 -9" "xz -9" "zstd -19"; do
  set -- $tool
  if ! command -v "$1" > /dev/null; then
    echo "| $tool | not installed | | | | |" >> "$table"
    echo "{\"compressor\":\"$tool\",\"skipped\":\"not installed\"}" | tee -a "$jsonl"
    continue
  fi
  measure "$tool" "$tool -c" "$1 -dc"
done
echo
cat "$table"

#!/usr/bin/env bash
# Issue 3: ssm-10m trained for the same wall-clock by bytelm and by the PyTorch peer on the benchmark corpus
# (debdocs-en, ../shared/data/README.md), then each scored on the whole validation file with the same protocol
# (bytelm eval; bench/peer_ssm_timed.py mirrors it), side by side in $OUT/wallclock.jsonl.
#
# Staged by bench/stage_device.sh (PEERS=1 DATA=1) on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && SECS=240 bash bench/device_ssm_wallclock.sh     carry: .devpack
#
# Environment (defaults in brackets):
#   SECS [240]       training seconds for each side (bytelm --max-seconds, the peer's --seconds)
#   BATCH [32], SEQ [2048]  as in the throughput benchmark (device_ssm.sh) at this size; the peer gets the same
#   STEPS [1000000]  bytelm --steps, and the peer's --steps with --schedule bytelm, so both get the same lr at every
#                    step. The cosine spans STEPS, so with the default the time limit ends both runs ~100 warmup
#                    steps into a near-constant lr; set STEPS to about the steps that fit in SECS for a full decay.
#   EVAL_EVERY [STEPS]  bytelm's validation/checkpoint period; the default evaluates only at the stop, as the
#                    peer does, so neither side spends its seconds on anything but training
#   SIDES ["bytelm peer"]  both sides at SECS=240 take about 9 of the 10 minutes one call may run (the peer's
#                    compilation and both evaluations come on top); for more, run SIDES=bytelm and SIDES=peer in
#                    two calls on the same card
#   WORK [/tmp]      where its intermediate files and the checkpoint go
# Both sides run one after the other on the same GPU, never at once.
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
work="${WORK:-/tmp}/wallclock_work"; rm -rf "$work"; mkdir -p "$work"  # intermediate files (a call returns at most 8 from $OUT)
SECS="${SECS:-240}" BATCH="${BATCH:-32}" SEQ="${SEQ:-2048}" STEPS="${STEPS:-1000000}"
EVAL_EVERY="${EVAL_EVERY:-$STEPS}" SIDES="${SIDES:-bytelm peer}"
D=512 LAYERS=6 PATCH=2  # the ssm-10m preset
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

# The corpus, unpacked outside the repo copy and checked against the README's sha256.
data=/tmp/bytelm_data
bash bench/unpack_corpus.sh "$data" || exit 1
train="$data/debdocs-en-train.txt" val="$data/debdocs-en-val.txt"

if [[ " $SIDES " == *" bytelm "* ]]; then
  run="${WORK:-/tmp}/wallclock_run"; rm -rf "$run"
  # The train summary's val_bpb covers the head of the val file (--eval-bytes); the eval after it scores all of it.
  timeout $((SECS + 120)) .devbin/bytelm train --device cuda --preset ssm-10m --batch "$BATCH" --seq "$SEQ" \
    --steps "$STEPS" --eval-every "$EVAL_EVERY" --max-seconds "$SECS" --quiet --data "$train" --val "$val" \
    --out "$run" 2> "$out/bytelm_train.log" | tee "$work/bytelm_train.json"
  cp "$run/metrics.jsonl" "$out/bytelm_metrics.jsonl"
  timeout 300 .devbin/bytelm eval --device cuda --quiet --ckpt "$run" --data "$val" --seq "$SEQ" | tee "$work/bytelm_eval.json"
  # train reports no GPU memory; bench's peak at the same size stands in for it (a few seconds)
  .devbin/bytelm bench --device cuda --preset ssm-10m --batch "$BATCH" --seq "$SEQ" --warmup 5 --steps 20 \
    2>&1 | grep '^{' | tee "$work/bytelm_bench.json"
  # one line in the peer's shape: the run's steps and seconds, the whole-file val_bpb, bench's peak memory
  python3 - "$work" "$D" "$LAYERS" "$PATCH" "$BATCH" "$SEQ" "$SECS" <<'PY' | tee -a "$out/wallclock.jsonl"
import json, sys
out, d, layers, patch, batch, seq, secs = sys.argv[1], *map(int, sys.argv[2:7]), float(sys.argv[7])
def first_json(path):
    try:
        return json.loads(next(l for l in open(path) if l.startswith("{")))
    except (OSError, StopIteration, ValueError):
        return {}
run, ev, bench = first_json(f"{out}/bytelm_train.json"), first_json(f"{out}/bytelm_eval.json"), first_json(f"{out}/bytelm_bench.json")
print(json.dumps(dict(impl="bytelm", d=d, layers=layers, patch=patch, batch=batch, seq=seq, budget_s=secs,
                      seconds=run.get("seconds"), steps=run.get("step"), bytes_per_s=run.get("bytes_per_s"),
                      val_bpb=ev.get("bpb"), val_bytes=ev.get("bytes"), val_bpb_head=run.get("val_bpb"),
                      peak_gib=bench.get("peak_gib"))))
PY
fi

if [[ " $SIDES " == *" peer "* ]]; then
  # the peer compiles first (outside its clock, reported as compile_s), then trains SECS seconds and scores val
  timeout $((SECS + 300)) python3 bench/peer_ssm_timed.py --peer .peers/ssm_ref.py --data "$train" --val "$val" \
    --seconds "$SECS" --d $D --layers $LAYERS --patch $PATCH --batch "$BATCH" --seq "$SEQ" \
    --schedule bytelm --steps "$STEPS" 2> "$out/peer.log" | grep '^{' | tee -a "$out/wallclock.jsonl"
  tail -3 "$out/peer.log"
fi

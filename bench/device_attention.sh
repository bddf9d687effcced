#!/usr/bin/env bash
# One device call for the fused attention kernel: its CUDA tests, then bytelm's kernel and PyTorch's flash SDPA
# (bench/sdpa_ref.py) timed at the same shapes on the same card (B * T = 32768; H = 8, Dh = 64, and H = 4,
# Dh = 128; T = 1024, 2048, 4096), bytelm once more after PyTorch so drift of the card shows, and the ratios.
# Staged by bench/stage_device.sh on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_attention.sh     carry: .devpack
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
.devbin/bytelm_tests --gtest_filter='CudaAttention*' --gtest_output="xml:$out/cuda_attention_tests.xml" 2>&1 \
  | tee "$out/cuda_attention_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|Failure|error|Expected|Which is" | head -40
shapes=("8 64" "4 128")
for s in "${shapes[@]}"; do
  set -- $s
  .devbin/bytelm bench-attention --heads $1 --head-dim $2 2>&1 | tee -a "$out/bytelm.jsonl"
done
commit=$(grep -m1 -o '"commit":"[^"]*"' "$out/bytelm.jsonl" | cut -d'"' -f4)
for s in "${shapes[@]}"; do
  set -- $s
  timeout 300 python3 bench/sdpa_ref.py --heads $1 --head-dim $2 --commit "$commit" 2>&1 | tee -a "$out/sdpa.jsonl"
done
for s in "${shapes[@]}"; do
  set -- $s
  .devbin/bytelm bench-attention --heads $1 --head-dim $2 2>&1 | tee -a "$out/bytelm_after.jsonl"
done
# speedup = PyTorch ms / bytelm ms (above 1: bytelm is faster), bytelm's two runs averaged
python3 - "$out" <<'PY' | tee "$out/ratios.txt"
import json, os, sys
out = sys.argv[1]
def rows(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return {}
    got = {}
    for line in open(path):
        if line.startswith("{"):
            r = json.loads(line)
            got.setdefault((r["H"], r["Dh"], r["T"], r["pass"]), []).append(r)
    return got
ours, after, theirs = rows("bytelm.jsonl"), rows("bytelm_after.jsonl"), rows("sdpa.jsonl")
print(f"{'H':>2} {'Dh':>4} {'T':>5} {'pass':>8} {'bytelm ms':>10} {'(after)':>8} {'TFLOP/s':>8} {'sdpa ms':>8} {'TFLOP/s':>8} {'speedup':>8}")
for key in sorted(ours):
    a = ours[key][0]
    b = after.get(key, [a])[0]
    ms = (a["ms"] + b["ms"]) / 2
    t = theirs.get(key, [None])[0]
    ratio = f"{t['ms'] / ms:.3f}" if t else "-"
    print(f"{key[0]:>2} {key[1]:>4} {key[2]:>5} {key[3]:>8} {a['ms']:>10.3f} {b['ms']:>8.3f} {a['tflops']:>8.1f} "
          f"{t['ms'] if t else float('nan'):>8.3f} {t['tflops'] if t else float('nan'):>8.1f} {ratio:>8}")
PY

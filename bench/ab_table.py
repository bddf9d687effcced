"""The tables of one device_ab.sh call, side by side: bytes/s of every binary and setting at each size, with the
ratio to the first (the base), and, from the kernel tables (ncu_*_SIZE.txt), the ms a step (and TB/s, where the
table has DRAM bytes) of the kernels whose names match a pattern, for every entry.

usage: python3 ab_table.py DIR [PATTERN] [SIZE]
  DIR      the call's results (ab_all.tar unpacked, or the files themselves): bench_<entry>.jsonl, ncu_<entry>_SIZE.txt
  PATTERN  a regular expression over kernel names (default: layernorm|swiglu_gate|diag_scan|add_partial)
  SIZE     the kernel tables' size (default 10m)
Prints Markdown tables.
"""
import glob, json, os, re, sys

folder = sys.argv[1]
pattern = re.compile(sys.argv[2] if len(sys.argv) > 2 else r"layernorm|swiglu_gate|diag_scan|add_partial")
size = sys.argv[3] if len(sys.argv) > 3 else "10m"
SIZES = {256: "2m", 512: "10m", 1024: "100m"}  # by the model's d


def entry_order(name):  # the bases first, then .devbin, then its settings, as device_ab.sh runs them
    return (0 if name.startswith("devbin_base") else 1 if name == "devbin" else 2, name)


benches = {}
for path in glob.glob(os.path.join(folder, "bench_*.jsonl")):
    entry = os.path.basename(path)[len("bench_"):-len(".jsonl")]
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        benches.setdefault(entry, {})[SIZES.get(row["model"]["d"], str(row["model"]["d"]))] = row
entries = sorted(benches, key=entry_order)
if entries:
    sizes = [s for s in ("2m", "10m", "100m") if any(s in benches[e] for e in entries)]
    base = benches[entries[0]]
    print("| entry | commit | " + " | ".join(f"{s} bytes/s" for s in sizes) + " |")
    print("| --- | --- |" + " --- |" * len(sizes))
    for e in entries:
        cells = []
        for s in sizes:
            row = benches[e].get(s)
            if not row:
                cells.append("-")
                continue
            cell = f"{row['bytes_per_s'] / 1e6:.3f} M"
            if e != entries[0] and s in base:
                cell += f" ({100 * (row['bytes_per_s'] / base[s]['bytes_per_s'] - 1):+.1f}%)"
            cells.append(cell)
        commit = next(iter(benches[e].values())).get("commit", "?")
        print(f"| {e} | {commit} | " + " | ".join(cells) + " |")
    print()

kernels, bandwidth = {}, {}  # entry -> kernel -> ms a step, and TB/s where the table has it
for path in glob.glob(os.path.join(folder, f"ncu_*_{size}.txt")):
    entry = os.path.basename(path)[len("ncu_"):-len(f"_{size}.txt")]
    if entry.startswith("detail"):
        continue
    for line in open(path):
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) >= 2 and (parts[0] == "total" or pattern.search(parts[0])):
            # one row per LayerNorm kernel across builds whose template arguments go on past <T, skip, threads>
            name = re.sub(r"(layernorm_\w+_kernel<[^,>]+, \d+, \d+)[^>]*>?", r"\1>", parts[0])
            try:
                ms = kernels.setdefault(entry, {})
                tbs = bandwidth.setdefault(entry, {})
                tbs[name] = float(parts[6]) if len(parts) >= 7 and name not in ms else None  # TB/s, if measured
                ms[name] = ms.get(name, 0.0) + float(parts[1].split()[0])
            except ValueError:
                pass
entries = sorted(kernels, key=entry_order)
if entries:
    names = sorted({k for e in entries for k in kernels[e]}, key=lambda k: (k != "total", k))
    print(f"ms a step at {size}:")
    print()
    print("| kernel | " + " | ".join(entries) + " |")
    print("| --- |" + " --- |" * len(entries))
    for k in names:
        short = re.sub(r"^void |bytelm::<unnamed>::|bytelm::\(anonymous namespace\)::", "", k)
        cells = []
        for e in entries:
            if k not in kernels[e]:
                cells.append("-")
                continue
            tb = bandwidth[e].get(k)
            cells.append(f"{kernels[e][k]:.3f}" + (f" ({tb:.2f} TB/s)" if tb is not None else ""))
        print(f"| {short} | " + " | ".join(cells) + " |")

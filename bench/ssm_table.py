"""The issue's table from one device_ssm.sh call: bytelm against the peer at each size (bytes/s, ms a step, the
ratio, peak GiB, MFU), then every BASE entry of the call against bytelm at the same size (its nearest run before
the entry's), and bytelm's later runs (entry .devbin) against its first.

usage: python3 ssm_table.py DIR
  DIR  the call's files: bench.jsonl (bytelm), peer.jsonl (the peer), bench_base.jsonl (BASE entries, optional;
       lines without an "entry" key, from calls before entries were tagged, count as one entry, "base")
Prints Markdown tables.
"""
import json, os, sys

PRESETS = {256: ("ssm-2m", 64), 512: ("ssm-10m", 32), 1024: ("ssm-100m", 16)}  # by d: the sizes


def d_of(row):  # bytelm's lines keep d under "model", the peer's at the top; None for any other line
    return row["model"].get("d") if isinstance(row.get("model"), dict) else row.get("d")


def rows(path):  # the file's result lines (JSON with a model width)
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            if d_of(row) is not None:
                out.append(row)
    return out


def mega(x):
    return f"{x / 1e6:.3f} M" if x < 2e6 else f"{x / 1e6:.2f} M"


folder = sys.argv[1]
ours = {d_of(r): r for r in rows(os.path.join(folder, "bench.jsonl"))}
peer = {d_of(r): r for r in rows(os.path.join(folder, "peer.jsonl"))}
# Each BASE entry against bytelm's nearest run before it at the same size: bench.jsonl's, or a later pass's line
# for bytelm itself (entry .devbin) in bench_base.jsonl, so that an entry benched minutes later meets the card
# in the same state.
bases, against, latest = {}, {}, dict(ours)
for r in rows(os.path.join(folder, "bench_base.jsonl")):
    entry, d = r.get("entry", "base"), d_of(r)
    bases.setdefault(entry, {})[d] = r
    against.setdefault(entry, {})[d] = ours.get(d) if entry == ".devbin" else latest.get(d)  # .devbin: the drift
    if entry == ".devbin":
        latest[d] = r

first = next(iter(ours.values()), None)
if first:
    print(f"bytelm {first['commit']} on {first['device_name']}\n")
print("| model | batch | bytelm bytes/s | peer bytes/s | ratio | bytelm / peer peak GiB | MFU |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for d, (name, batch) in PRESETS.items():
    o, p = ours.get(d), peer.get(d)
    if not o:
        continue
    ratio = f"{o['bytes_per_s'] / p['bytes_per_s']:.2f}x" if p else "-"
    peer_cell = f"{mega(p['bytes_per_s'])} ({p['step_ms']:.1f} ms)" if p else "-"
    peak = f"{o['peak_gib']:.2f} / {p['peak_gib']:.2f}" if p else f"{o['peak_gib']:.2f} / -"
    print(f"| {name} | {o['batch']} | {mega(o['bytes_per_s'])} ({o['step_ms']:.2f} ms/step) | {peer_cell} | {ratio} "
          f"| {peak} | {100 * o['mfu']:.1f}% |")
if bases:
    print("\n| entry | " + " | ".join(PRESETS[d][0] for d in PRESETS) + " |")
    print("| --- |" + " --- |" * len(PRESETS))
    for entry, by_d in bases.items():
        cells = []
        for d in PRESETS:
            b, o = by_d.get(d), against[entry].get(d)
            if not b:
                cells.append("-")
                continue
            gain = f", bytelm {100 * (o['bytes_per_s'] / b['bytes_per_s'] - 1):+.1f}%" if o else ""
            cells.append(f"{mega(b['bytes_per_s'])} ({b['commit']}{gain})")
        print(f"| {entry} | " + " | ".join(cells) + " |")

"""Kernel time table from an Nsight Compute CSV (ncu --csv --metrics gpu__time_duration.sum).

usage: python3 ncu_summary.py FILE.csv [STEPS]   prints total ms per kernel name (per step when STEPS is given),
largest first, with its share, its launches (over all the profiled steps) and the mean time of one launch.
"""
import collections, csv, sys

rows = list(csv.DictReader(line for line in open(sys.argv[1]) if line.startswith('"')))
steps = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
total = collections.Counter()
count = collections.Counter()
for r in rows:
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"].split("(")[0][:90]
    value = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "nsecond")
    ms = value / {"nsecond": 1e6, "usecond": 1e3, "msecond": 1.0}.get(unit, 1e6)
    total[name] += ms / steps
    count[name] += 1
grand = sum(total.values())
lines = [f"{'kernel':90s} {'ms':>8s} {'share':>6s} {'calls':>6s} {'us/call':>8s}", f"{'total':90s} {grand:8.3f}"]
for name, ms in total.most_common():
    lines.append(f"{name:90s} {ms:8.3f} {100 * ms / grand:5.1f}% {count[name]:6d} {1e3 * ms * steps / count[name]:8.1f}")
sys.stdout.write("\n".join(lines) + "\n")

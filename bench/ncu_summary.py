"""Kernel time table from an Nsight Compute CSV (ncu --csv --metrics gpu__time_duration.sum, and optionally
dram__bytes_read.sum,dram__bytes_write.sum).

usage: python3 ncu_summary.py FILE.csv [STEPS]   prints total ms per kernel name (per step when STEPS is given),
largest first, with its share, its launches (over all the profiled steps) and the mean time of one launch; where
the CSV has the DRAM byte counts, also the MB one launch moves and the bandwidth it reaches (TB/s), so that no one
has to count a kernel's operands by hand to call it bandwidth-bound or not.
"""
import collections, csv, sys

TIME = {"nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0}
BYTES = {"byte": 1.0, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "Tbyte": 1e12}
DRAM = ("dram__bytes_read.sum", "dram__bytes_write.sum")

rows = list(csv.DictReader(line for line in open(sys.argv[1]) if line.startswith('"')))
steps = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
launches = collections.defaultdict(dict)  # launch ID -> {"name", metric -> value in seconds or bytes}
for r in rows:
    metric = r.get("Metric Name")
    if metric != "gpu__time_duration.sum" and metric not in DRAM:
        continue
    launch = launches[r.get("ID", len(launches))]
    launch["name"] = r["Kernel Name"].split("(")[0][:90]
    value = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "nsecond")
    launch[metric] = value * (TIME.get(unit, 1e-9) if metric == "gpu__time_duration.sum" else BYTES.get(unit, 1.0))

seconds = collections.Counter()
moved = collections.Counter()
count = collections.Counter()
has_bytes = False
for launch in launches.values():
    if "gpu__time_duration.sum" not in launch:
        continue
    name = launch["name"]
    seconds[name] += launch["gpu__time_duration.sum"]
    count[name] += 1
    if all(m in launch for m in DRAM):
        has_bytes = True
        moved[name] += launch[DRAM[0]] + launch[DRAM[1]]

grand = sum(seconds.values()) * 1e3 / steps
head = f"{'kernel':90s} {'ms':>8s} {'share':>6s} {'calls':>6s} {'us/call':>8s}"
if has_bytes:
    head += f" {'MB/call':>8s} {'TB/s':>6s}"
lines = [head, f"{'total':90s} {grand:8.3f}"]
for name, s in seconds.most_common():
    ms = s * 1e3 / steps
    line = f"{name:90s} {ms:8.3f} {100 * ms / grand:5.1f}% {count[name]:6d} {1e6 * s / count[name]:8.1f}"
    if has_bytes:
        line += f" {moved[name] / count[name] / 1e6:8.1f} {moved[name] / s / 1e12:6.2f}"
    lines.append(line)
sys.stdout.write("\n".join(lines) + "\n")

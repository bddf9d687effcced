#!/usr/bin/env python3
"""Issue 4's patching study at 10 minutes a variant, gathered into one table.

Each variant trains on its own H100 in its own run (bench/device_runs.sh, RUNS="patching-<variant> ...", which runs
`STUDY=<variant> CHECKS=0 SECS=600 bash bench/device_patching.sh`), and its `bytelm compare` line is kept as
bench/results/patching600s_h100_<commit>_<variant>.jsonl. This joins the newest line of each variant into one
markdown table (stdout) and, with --jsonl PATH, one JSON line a variant. Variants not run yet get a row saying so.

    python3 bench/patching_table.py [--results DIR] [--jsonl PATH]
"""
import argparse
import glob
import json
import os
import sys

VARIANTS = ["mean", "attn", "none", "local", "soft", "entropy"]


def newest_line(results, variant):
    """The last compare line of the newest file for this variant, and that file's commit, or (None, None)."""
    files = sorted(glob.glob(os.path.join(results, f"patching600s_h100_*_{variant}.jsonl")), key=os.path.getmtime)
    if not files:
        return None, None
    lines = [line for line in open(files[-1]) if line.strip()]
    if not lines:
        return None, None
    commit = os.path.basename(files[-1])[len("patching600s_h100_"):-len(f"_{variant}.jsonl")]
    return json.loads(lines[-1]), commit


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=os.path.join(here, "results"), help="where the per-variant files are")
    ap.add_argument("--jsonl", help="also write one JSON line a variant here")
    args = ap.parse_args()
    rows, out = [], []
    for v in VARIANTS:
        r, commit = newest_line(args.results, v)
        if r is None:
            rows.append(f"| {v} | not run yet | | | | | | |")
            continue
        if r.get("error"):
            rows.append(f"| {v} | failed: {r['error']} | | | | | | {commit} |")
        else:
            rows.append(
                f"| {v} | {r['params']:,} | {r['bytes_per_s'] / 1e6:.2f} M | {r['steps']:,} | {r['best_val_bpb']:.4f} "
                f"| {r['final_val_bpb']:.4f} | {r['leakcheck']} | {commit} |"
            )
        out.append(dict(r, variant=v, commit=commit))
    print("| patching | parameters | train bytes/s | steps in 600 s | best val bpb | final val bpb | leak check "
          "| commit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if args.jsonl:
        with open(args.jsonl, "w") as f:
            for r in out:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

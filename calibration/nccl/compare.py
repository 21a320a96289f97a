#!/usr/bin/env python3
"""Compares nccl_bench curves measured on real GPUs with Phantom's for the same sweeps (calibration/nccl/).

    python3 calibration/nccl/compare.py [DIR]      # DIR holds real/ and phantom-*/ (default: h200-x2)

Prints, per operation, the mean |error| of Phantom's time below and from 1 MiB, the worst error from 1 MiB, and
the five largest sizes as real/phantom microseconds. The Phantom side is reproduced on any machine with
`phantom run -n 1 --cluster dgx-h200 --host-time deterministic -- nccl_bench -o OP -g 2 -b 8 -e 1G -f 4`.
"""
import glob
import os
import sys

base = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "h200-x2")
sim_dir = sorted(glob.glob(os.path.join(base, "phantom-*")))[0]


def load(path):
    d = {}
    for line in open(path):
        f = line.split()
        if line.startswith("#") or len(f) < 6:
            continue
        try:
            d[int(f[0])] = float(f[5])
        except ValueError:
            pass
    return d


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


for real_file in sorted(glob.glob(os.path.join(base, "real", "nccl-*.txt"))):
    name = os.path.basename(real_file)
    if name == "nccl-env.txt":
        continue
    real, sim = load(real_file), load(os.path.join(sim_dir, name))
    small, big, rows = [], [], []
    for size in sorted(real):
        if size not in sim:
            continue
        err = (sim[size] - real[size]) / real[size] * 100
        (big if size >= 1 << 20 else small).append(abs(err))
        rows.append(f"{size}: {real[size]:.1f}/{sim[size]:.1f} ({err:+.0f} %)")
    op = name[len("nccl-"):-len(".txt")]
    print(f"{op:14s} below 1 MiB: mean |error| {mean(small):5.1f} %   from 1 MiB: mean {mean(big):5.1f} %, max {max(big, default=0):5.1f} %")
    print("    " + "; ".join(rows[-5:]))

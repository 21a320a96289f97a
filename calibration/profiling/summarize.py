#!/usr/bin/env python3
"""Summarises measure-models.sh's log (default: h100-sxm-80gb/models.txt): for each model, the real GPU's step
time, profiling mode's simulated step time and its error, and the wall time of a step on the real GPU under
profiling mode against the real run's (profiling mode's overhead). Steps 0 and 1 are warm-up (profiling mode
measures each configuration at its first two launches) and are reported separately. Where the log holds several
runs of a kind (measure-models.sh's REPEATS), their steady steps are pooled. The step time compared is the
mean of the steady steps; the median is shown too (this VM's real runs have outliers of up to three times the
usual step).

    python3 calibration/profiling/summarize.py [models.txt]

KIND=replay compares the runs headed `<model> replay` (measure-exec-vs-replay.sh) instead of `<model> profile`.
"""
import os
import re
import sys

KIND = os.environ.get("KIND", "profile")
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "h100-sxm-80gb", "models.txt")
runs = {}
count = {}
each = {}  # title -> one list of steady step times per run, in order
host = {}  # title -> (application ms, Phantom's own CPU ms) of every steady step (PHANTOM_LOG's phantom::host lines)
for section in open(path).read().split("== ")[1:]:
    title, _, body = section.partition("\n")
    title = title.strip()
    steps = [(int(m[1]), float(m[2]), float(m[3]))
             for m in re.finditer(r"rank 0 step (\d+) time_ms ([\d.]+) .* wall_ms ([\d.]+)", body)]
    runs.setdefault(title, []).extend(steps)
    count[title] = count.get(title, 0) + 1
    each.setdefault(title, []).append([t for s, t, _ in steps if s >= 2])
    host.setdefault(title, []).extend(
        (float(m[2]), float(m[3])) for m in re.finditer(
            r'host time in "step (\d+)": application ([\d.]+) ms.*own CPU ([\d.]+) ms', body) if int(m[1]) >= 2)


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return float("nan")
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


errors = []
errors_med = []
print(f"{'model':<12} {'runs':>4} {'real ms':>9} {'profiled ms':>12} {'error':>7} {'(medians:':>10} {'real':>7} {'profiled':>9} {'error)':>7} {'real wall':>10} {'profiled wall':>14} {'overhead':>9} {'warm-up wall (steps 0-1)':>26}")
for model in dict.fromkeys(t.split()[0] for t in runs):
    real, prof = runs.get(f"{model} real"), runs.get(f"{model} {KIND}")
    if not real or not prof:
        continue
    r = mean([t for s, t, _ in real if s >= 2])
    p = mean([t for s, t, _ in prof if s >= 2])
    rm = median([t for s, t, _ in real if s >= 2])
    pm = median([t for s, t, _ in prof if s >= 2])
    rw = mean([w for s, _, w in real if s >= 2])
    pw = mean([w for s, _, w in prof if s >= 2])
    n = count[f"{model} {KIND}"]
    warm = f"{sum(w for s, _, w in prof if s < 2) / 1e3 / n:.2f} s vs {sum(w for s, _, w in real if s < 2) / 1e3 / count[f'{model} real']:.2f} s"
    err = (p - r) / r * 100
    errors.append(abs(err))
    errors_med.append(abs((pm - rm) / rm * 100))
    runs_text = f"{count[f'{model} real']}+{n}"
    print(f"{model:<12} {runs_text:>4} {r:9.2f} {p:12.2f} {err:+6.1f}% {'':>10} {rm:7.2f} {pm:9.2f} {(pm - rm) / rm * 100:+6.1f}% {rw:9.0f}ms {pw:13.0f}ms {(pw - rw) / rw * 100:+8.0f}% {warm:>26}")
    # Each profiled run against the real run just before it: the machine's speed drifts over minutes, and a
    # pair sees the same drift.
    pairs = [(mean(pr) - mean(rr)) / mean(rr) * 100 for rr, pr in zip(each[f"{model} real"], each[f"{model} {KIND}"])]
    line = f"{'':<12} pairs (each profiled run against the real run before it): " + " ".join(f"{e:+.1f}%" for e in pairs)
    line += f"; median {median(pairs):+.1f}%"
    if host.get(f"{model} {KIND}"):
        app = mean([a for a, _ in host[f"{model} {KIND}"]])
        own = mean([o for _, o in host[f"{model} {KIND}"]])
        line += f"; per step: application CPU {app:.1f} ms, Phantom's own {own:.1f} ms"
    print(line)
    det = runs.get(f"{model} profile-det")
    if det:
        d = mean([t for s, t, _ in det if s >= 2])
        print(f"{'':<12} deterministic host time: {d:.3f} ms per step (what a table replay reproduces)")
if errors:
    print(f"means: mean |error| {mean(errors):.1f} %, max {max(errors):.1f} %; "
          f"medians: mean |error| {mean(errors_med):.1f} %, max {max(errors_med):.1f} %")

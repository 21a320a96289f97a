#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing): what simulating DDP training of GPT-2 124M costs on this
# machine. For each rank count, `phantom run -n N` runs tests/programs/torch/gpt2.py --ddp (batch 8 x 1024,
# parameters created on the simulated GPU, 3 steps) and prints: the launcher's wall time and peak memory per
# rank process (mean, max, and mean x ranks), the real wall time of a steady step (rank 0), and its floor:
# ranks x the host CPU one rank uses per step / this machine's cores (the time the step takes if the
# machine's cores do nothing but run the ranks' Python and Phantom's calls).
# Usage: bash scripts/bench-torch.sh [ranks...]   (default 8 32 64; needs install-torch + xtask stage)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/phantom/bench"
mkdir -p "$out"
cores="$(nproc)"
for ranks in "${@:-8 32 64}"; do
  echo "== $ranks ranks: DDP GPT-2 124M, batch 8 x 1024, 3 steps"
  log="$out/torch-ddp-$ranks.log"
  report="$out/torch-ddp-$ranks.json"
  /usr/bin/time -f "launcher: %e s wall" "$root/target/phantom/bin/phantom" run -n "$ranks" --report "$report" -- \
    env PYTHONPATH="$root/.deps/torch" python3 "$root/tests/programs/torch/gpt2.py" --ddp --init-on-device --steps 3 \
    >"$log" 2>&1 || { echo "failed: see $log"; tail -5 "$log"; continue; }
  python3 - "$log" "$report" "$ranks" "$cores" <<'PY'
import json, sys
log, report, ranks, cores = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(report))
steps = {}
for line in open(log):
    w = line.split()
    if len(w) >= 12 and w[0] == "rank" and w[2] == "step":
        steps.setdefault(int(w[3]), []).append((int(w[1]), float(w[5]), float(w[9]), float(w[11])))
last = max(steps)
rows = steps[last]
sim_ms = max(x[1] for x in rows)
cpu_ms = sum(x[2] for x in rows) / len(rows)
wall_ms = max(x[3] for x in rows)
rss = r["processes"]["peak_rss_mib"]
print(f"  wall time {r['wall_time_s']:.1f} s; peak RSS per rank mean {rss['mean']:.0f} MiB, max {rss['max']:.0f} MiB, "
      f"total {rss['mean'] * ranks / 1024:.1f} GiB")
print(f"  step {last}: simulated {sim_ms:.1f} ms; real {wall_ms:.0f} ms; host CPU per rank {cpu_ms:.1f} ms; "
      f"floor {ranks} x {cpu_ms:.1f} ms / {cores} cores = {ranks * cpu_ms / cores:.0f} ms")
print(f"  NCCL: {r['nccl_operations']}")
PY
done

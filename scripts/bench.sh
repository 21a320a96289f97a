#!/usr/bin/env bash
# Benchmarks (print figures, assert nothing): wall-clock cost of Phantom's launch and synchronize paths.
# Usage: bash scripts/bench.sh [launches]   (needs scripts/install-deps.sh and `cargo xtask stage`)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cu="$root/.deps/cuda/nvidia/cu13"
out="$root/target/phantom/bench"
mkdir -p "$out"
"$cu/bin/nvcc" -cudart shared -arch=sm_90 -O2 "$root/bench/launch_overhead.cu" -o "$out/launch_overhead" -L"$cu/lib"
for mode in deterministic measured; do
  echo "== host time: $mode"
  LD_LIBRARY_PATH="$root/target/phantom/lib" PHANTOM_HOST_TIME=$mode "$out/launch_overhead" "${1:-1000000}"
done

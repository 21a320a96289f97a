#!/usr/bin/env bash
# Benchmark (prints figures, asserts nothing): what a whole-cluster collective sweep costs on this machine.
# For each rank count, `phantom run -n N` runs the project's collective benchmark (tests/programs/nccl_bench.cu)
# over an all-reduce sweep from 8 B to 1 GiB (factor 2, 1 warm-up and 5 timed iterations per size) and prints
# the launcher's summary: wall time, simulator events and events/s, peak memory per rank process.
# Usage: bash scripts/bench-collectives.sh [ranks...]   (default 64 256 1024; needs install-deps + xtask stage)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cu="$root/.deps/cuda/nvidia/cu13"
nccl="$root/.deps/cuda/nvidia/nccl"
out="$root/target/phantom/bench"
mkdir -p "$out"
"$cu/bin/nvcc" -std=c++17 -cudart shared -O2 -I"$cu/include" -I"$nccl/include" "$root/tests/programs/nccl_bench.cu" \
  -o "$out/nccl_bench" -L"$cu/lib" -L"$nccl/lib" -lnccl
cd "$out"
for n in "${@:-64 256 1024}"; do
  for ranks in $n; do
    echo "== $ranks ranks: all-reduce 8 B .. 1 GiB"
    "$root/target/phantom/bin/phantom" run -n "$ranks" --host-time deterministic -- \
      ./nccl_bench -o allreduce -b 8 -e 1G -f 2 -w 1 -n 5 | tail -n 3
  done
done

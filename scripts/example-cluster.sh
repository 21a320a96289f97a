#!/usr/bin/env bash
# Runs the project's collective benchmark (tests/programs/nccl_bench.cu, an nccl-tests-like program compiled
# with NVIDIA's pip nvcc against NVIDIA's nccl.h) as 32 ranks on 4 simulated DGX H100 nodes with
# `phantom run`: `bash scripts/example-cluster.sh [ranks] [nccl_bench options...]`.
# Needs `bash scripts/install-deps.sh` and `cargo xtask stage` first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cu="$root/.deps/cuda/nvidia/cu13"
nccl="$root/.deps/cuda/nvidia/nccl"
target="${CARGO_TARGET_DIR:-$root/target}"
phantom="$target/phantom/bin/phantom"
[[ -x "$cu/bin/nvcc" ]] || { echo "example-cluster.sh: no nvcc in $cu: run \`bash scripts/install-deps.sh\` first" >&2; exit 1; }
[[ -x "$phantom" ]] || { echo "example-cluster.sh: no $phantom: run \`cargo xtask stage\` first" >&2; exit 1; }
out="$target/phantom/examples"
mkdir -p "$out"
"$cu/bin/nvcc" -std=c++17 -cudart shared -O2 -I"$cu/include" -I"$nccl/include" "$root/tests/programs/nccl_bench.cu" \
  -o "$out/nccl_bench" -L"$cu/lib" -L"$nccl/lib" -lnccl
ranks="${1:-32}"
shift || true
cd "$out"
set -x
"$phantom" run -n "$ranks" --cluster dgx-h100 -- ./nccl_bench -o allreduce -b 8 -e 1G -f 4 "$@"

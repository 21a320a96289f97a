#!/usr/bin/env bash
# Compiles a CUDA program with NVIDIA's pip nvcc (default: examples/saxpy.cu) and runs it on
# Phantom's simulated cluster: `bash scripts/example.sh [program.cu]`. Needs `bash scripts/install-deps.sh`
# and `cargo xtask stage` first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="${1:-$root/examples/saxpy.cu}"
cu="$root/.deps/cuda/nvidia/cu13"
lib="${PHANTOM_LIB_DIR:-${CARGO_TARGET_DIR:-$root/target}/phantom/lib}"
[[ -x "$cu/bin/nvcc" ]] || { echo "example.sh: no nvcc in $cu: run \`bash scripts/install-deps.sh\` first" >&2; exit 1; }
[[ -f "$lib/libcudart.so.13" ]] || { echo "example.sh: nothing staged in $lib: run \`cargo xtask stage\` first" >&2; exit 1; }
out="${CARGO_TARGET_DIR:-$root/target}/phantom/examples"
mkdir -p "$out"
exe="$out/$(basename "${src%.*}")"
# -cudart shared: link libcudart.so.13 dynamically (nvcc links it statically by default), so Phantom's is used.
"$cu/bin/nvcc" -cudart shared -arch=sm_90 -O2 -o "$exe" "$src"
echo "+ LD_LIBRARY_PATH=$lib $exe" >&2
LD_LIBRARY_PATH="$lib" "$exe"

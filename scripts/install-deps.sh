#!/usr/bin/env bash
# Installs what the build and tests need that cargo does not fetch: NVIDIA's CUDA 13 headers, runtime, nvcc and
# NCCL from PyPI (pinned in scripts/cuda-wheels.txt) into .deps/cuda. Idempotent; safe to run on a fresh machine.
# Reinstalls everything when scripts/cuda-wheels.txt changes.
#
#   .deps/cuda/nvidia/cu13/{bin,include,lib}   CUDA runtime, headers, nvcc   (lib/libcudart.so -> libcudart.so.13)
#   .deps/cuda/nvidia/nccl/{include,lib}       NCCL                          (lib/libnccl.so   -> libnccl.so.2)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/pinned-wheels.sh"

# nvcc links -lcudart / -lnccl against the unversioned names; the wheels ship only the SONAME files.
link_names() {
  ln -sf libcudart.so.13 "$1/nvidia/cu13/lib/libcudart.so"
  ln -sf libnccl.so.2 "$1/nvidia/nccl/lib/libnccl.so"
}

if install_pinned "$root/scripts/cuda-wheels.txt" "$root/.deps/cuda" link_names; then
  echo "CUDA 13 wheels installed in $root/.deps/cuda/nvidia (cu13, nccl)" >&2
fi

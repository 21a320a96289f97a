#!/usr/bin/env bash
# Installs what the build and tests need that cargo does not fetch: NVIDIA's CUDA 13 headers, runtime, nvcc and
# NCCL from PyPI (pinned in scripts/cuda-wheels.txt) into .deps/cuda. Idempotent; safe to run on a fresh machine.
# Reinstalls everything when scripts/cuda-wheels.txt changes.
#
#   .deps/cuda/nvidia/cu13/{bin,include,lib}   CUDA runtime, headers, nvcc   (lib/libcudart.so -> libcudart.so.13)
#   .deps/cuda/nvidia/nccl/{include,lib}       NCCL                          (lib/libnccl.so   -> libnccl.so.2)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/cuda"
stamp="$dest/.installed"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$root/scripts/cuda-wheels.txt"; then
  exit 0
fi
# Install next to the old tree and swap at the end: a failed or interrupted install leaves the old one usable.
new="$root/.deps/cuda.new.$$"
trap 'rm -rf "$new"' EXIT
rm -rf "$new"
mkdir -p "$new"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$new" -r "$root/scripts/cuda-wheels.txt"
# nvcc links -lcudart / -lnccl against the unversioned names; the wheels ship only the SONAME files.
ln -sf libcudart.so.13 "$new/nvidia/cu13/lib/libcudart.so"
ln -sf libnccl.so.2 "$new/nvidia/nccl/lib/libnccl.so"
cp "$root/scripts/cuda-wheels.txt" "$new/.installed"
old="$root/.deps/cuda.old.$$"
if [[ -e "$dest" ]]; then mv "$dest" "$old"; fi
mv "$new" "$dest"
rm -rf "$old"
echo "CUDA 13 wheels installed in $dest/nvidia (cu13, nccl)" >&2

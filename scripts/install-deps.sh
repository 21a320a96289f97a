#!/usr/bin/env bash
# Installs what the build and tests need that cargo does not fetch: NVIDIA's CUDA 13 headers, runtime and nvcc
# from PyPI (pinned in scripts/cuda-wheels.txt) into .deps/cuda. Idempotent; safe to run on a fresh machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/cuda"
stamp="$dest/.installed"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$root/scripts/cuda-wheels.txt"; then
  exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dest" -r "$root/scripts/cuda-wheels.txt"
cu="$dest/nvidia/cu13"
# nvcc links -lcudart against the unversioned name; the wheel ships only the SONAME file.
ln -sf libcudart.so.13 "$cu/lib/libcudart.so"
cp "$root/scripts/cuda-wheels.txt" "$stamp"
echo "CUDA 13 wheels installed in $cu" >&2

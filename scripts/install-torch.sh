#!/usr/bin/env bash
# Installs PyTorch for the PyTorch tests: the pinned wheels of scripts/torch-wheels.txt, with --no-deps, into
# .deps/torch (about 1.4 GB; torch's NVIDIA library wheels are left out because Phantom provides those
# libraries). Idempotent; reinstalls when scripts/torch-wheels.txt changes. Use it as
#   PYTHONPATH=.deps/torch phantom run -n 8 python3 train.py
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/torch"
stamp="$dest/.installed"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$root/scripts/torch-wheels.txt"; then
  exit 0
fi
new="$root/.deps/torch.new.$$"
trap 'rm -rf "$new"' EXIT
rm -rf "$new"
mkdir -p "$new"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$new" \
  -r "$root/scripts/torch-wheels.txt"
cp "$root/scripts/torch-wheels.txt" "$new/.installed"
old="$root/.deps/torch.old.$$"
if [[ -e "$dest" ]]; then mv "$dest" "$old"; fi
mv "$new" "$dest"
rm -rf "$old"
echo "PyTorch installed in $dest" >&2

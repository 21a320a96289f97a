#!/usr/bin/env bash
# Installs PyTorch for the PyTorch tests: the pinned wheels of scripts/torch-wheels.txt, with --no-deps, into
# .deps/torch (about 1.4 GB; torch's NVIDIA library wheels are left out because Phantom provides those
# libraries). Idempotent; reinstalls when scripts/torch-wheels.txt changes. Use it as
#   PYTHONPATH=.deps/torch phantom run -n 8 python3 train.py
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/pinned-wheels.sh"
if install_pinned "$root/scripts/torch-wheels.txt" "$root/.deps/torch"; then
  echo "PyTorch installed in $root/.deps/torch" >&2
fi

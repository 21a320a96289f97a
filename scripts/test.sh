#!/usr/bin/env bash
# THE test command (CI runs it through .ci/run): installs NVIDIA's pinned CUDA 13 wheels, stages Phantom's
# libraries under their real names in target/phantom/lib, and runs every test of the workspace.
# Works on a fresh Debian 12 machine with rustup's cargo, gcc and python3 + pip; no GPU needed.
# Extra arguments go to `cargo test` (e.g. `bash scripts/test.sh -p phantom-tests abi`).
set -euo pipefail
cd "$(dirname "$0")/.."

# nvcc compiles host code as C++ and links with g++: the gcc package alone has neither cc1plus nor libstdc++'s
# headers. Install g++ where we may (root with apt-get), else say what is missing.
if ! command -v g++ >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing g++ (nvcc needs it as its host compiler)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
  else
    echo "test.sh: g++ is missing (nvcc's host compiler): install it (Debian: apt-get install g++)" >&2
    exit 1
  fi
fi

bash scripts/install-deps.sh
bash scripts/install-torch.sh
cargo xtask stage
cargo test --workspace "$@"

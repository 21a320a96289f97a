#!/usr/bin/env bash
# Runs NVIDIA's nccl-tests, unmodified, under `phantom run` (a local check; nothing here is committed or run
# in CI). Builds nccl-tests from a checkout you provide (with MPI, so that `mpirun` starts the ranks) against
# NVIDIA's headers and the pip nvcc, then runs each collective at the given rank counts on the dgx-h100 preset.
# Needs: scripts/install-deps.sh, `cargo xtask stage`, Open MPI (`apt-get install libopenmpi-dev openmpi-bin`).
# Usage: bash scripts/nccl-tests.sh NCCL_TESTS_CHECKOUT [ranks...]   (default ranks: 8 64)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$(cd "${1:?usage: nccl-tests.sh NCCL_TESTS_CHECKOUT [ranks...]}" && pwd)"
shift
cu="$root/.deps/cuda/nvidia/cu13"
nccl="$root/.deps/cuda/nvidia/nccl"
build="$root/target/phantom/nccl-tests"
mpi_home="$(mpicc -showme:incdirs | awk '{print $1}' | xargs dirname)"
make -s -C "$src" -j2 src.build MPI=1 MPI_HOME="$mpi_home" CUDA_HOME="$cu" CUDA_LIB="$cu/lib" NCCL_HOME="$nccl" \
  NVCC_GENCODE="-gencode=arch=compute_90,code=sm_90" BUILDDIR="$build" >/dev/null
for ranks in "${@:-8 64}"; do
  for ranks in $ranks; do
    for t in all_reduce all_gather reduce_scatter broadcast reduce alltoall sendrecv; do
      nodes=$(( (ranks + 7) / 8 ))
      echo "### ${t}_perf, $ranks ranks"
      echo '```'
      echo "\$ phantom run --cluster dgx-h100 --nodes $nodes --host-time deterministic -- mpirun -np $ranks ${t}_perf -b 8 -e 1G -f 8 -g 1"
      "$root/target/phantom/bin/phantom" run --cluster dgx-h100 --nodes "$nodes" --host-time deterministic -- \
        mpirun --allow-run-as-root --oversubscribe -np "$ranks" "$build/${t}_perf" -b 8 -e 1G -f 8 -g 1 2>&1 \
        | grep -v '^#  Rank' | grep -v '^#$'
      echo '```'
    done
  done
done

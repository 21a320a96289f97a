#!/usr/bin/env bash
# Benchmarks (print figures, assert nothing): wall-clock cost of Phantom's launch and synchronize paths, in both
# host-time modes and in an executing process of profiling mode (against tests/programs/fake_cuda_driver.c,
# whose calls cost next to nothing, so the figures are Phantom's own).
# Usage: bash scripts/bench.sh [launches]   (needs scripts/install-deps.sh and `cargo xtask stage`)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cu="$root/.deps/cuda/nvidia/cu13"
out="$root/target/phantom/bench"
mkdir -p "$out"
"$cu/bin/nvcc" -cudart shared -arch=sm_90 -O2 "$root/bench/launch_overhead.cu" -o "$out/launch_overhead" -L"$cu/lib"
for mode in deterministic measured; do
  echo "== host time: $mode"
  LD_LIBRARY_PATH="$root/target/phantom/lib" PHANTOM_HOST_TIME=$mode "$out/launch_overhead" "${1:-1000000}"
done
cc -shared -fPIC -O2 -pthread -I"$cu/include" "$root/tests/programs/fake_cuda_driver.c" -o "$out/libfake_cuda_driver.so"
echo "== executing process (PHANTOM_PROFILE=execute, fake driver), host time: measured"
LD_LIBRARY_PATH="$root/target/phantom/lib" PHANTOM_HOST_TIME=measured PHANTOM_PROFILE=execute \
  PHANTOM_REAL_DRIVER="$out/libfake_cuda_driver.so" "$out/launch_overhead" "${1:-1000000}"
# Library exports: the cuDNN stub simulated, then executing with the fake cuDNN as NVIDIA's library.
"$cu/bin/nvcc" -x cu -cudart shared -O2 "$root/bench/library_exports.c" -o "$out/library_exports" -L"$cu/lib"
mkdir -p "$out/nvidia"
cc -shared -fPIC -O2 -pthread -I"$cu/include" "$root/stubs/cudnn/testing/fake_cudnn.c" -o "$out/nvidia/libcudnn.so.9"
exports=$(( ${1:-1000000} / 10 ))
echo "== cuDNN exports, simulated process, host time: measured"
LD_LIBRARY_PATH="$root/target/phantom/lib" PHANTOM_HOST_TIME=measured "$out/library_exports" "$exports"
echo "== cuDNN exports, executing process (fake driver and fake cuDNN), host time: measured"
LD_LIBRARY_PATH="$root/target/phantom/lib" PHANTOM_HOST_TIME=measured PHANTOM_PROFILE=execute \
  PHANTOM_REAL_DRIVER="$out/libfake_cuda_driver.so" PHANTOM_REAL_LIBS="$out/nvidia" "$out/library_exports" "$exports"

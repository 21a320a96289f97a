#!/usr/bin/env bash
# Profiling mode against a real GPU (docs/profiling.md). Runs on a machine with one NVIDIA GPU, CUDA's nvcc and a
# full `pip install torch` (NVIDIA's wheels), from the repository root, with Phantom's staged libraries and the
# `phantom` binary in $PHANTOM_LIB (default .devcarry). Writes its logs and tables to $OUT.
#
#   pk.log        tests/programs/profile_kernels.cu: NVIDIA's runtime (3 runs), then Phantom profiling it in
#                 measured and deterministic host time, then a replay of the recorded table
#   pk-det.table  the table recorded by the deterministic profiling run (what CI replays)
#   pk8.log       8 ranks under `phantom run --profile`: only rank 0 runs on the GPU
#   gpt2.log      GPT-2 124M: NVIDIA's libraries, then Phantom's profiling mode (`--profile`)
#   gpt2.table    the profiling run's table
set -u
. calibration/device-env.sh
STEPS=${STEPS:-8}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  echo "nvcc: $NVCC"; $NVCC --version | tail -2
  echo "NVIDIA libraries: $NVLIB"; ls "$NVLIB" | head -30
  echo "driver: $(ls /usr/lib/x86_64-linux-gnu/libcuda.so.1 2>&1)"
} > "$OUT/env.txt" 2>&1

PK=/tmp/profile_kernels
$NVCC -cudart shared -arch=sm_90 -O2 -o $PK tests/programs/profile_kernels.cu >> "$OUT/env.txt" 2>&1
{
  for i in 1 2 3; do
    echo "== NVIDIA runtime, run $i"
    LD_LIBRARY_PATH=$NVLIB:${LD_LIBRARY_PATH:-} $PK
  done
  echo "== Phantom profiling, measured host time"
  LD_LIBRARY_PATH=$LIB PHANTOM_PROFILE=execute PHANTOM_PROFILE_TABLE=$OUT/pk.table PHANTOM_CLUSTER=dgx-h100 $PK
  cat "$OUT/pk.table"
  echo "== Phantom profiling, deterministic host time"
  LD_LIBRARY_PATH=$LIB PHANTOM_PROFILE=execute PHANTOM_PROFILE_TABLE=$OUT/pk-det.table PHANTOM_CLUSTER=dgx-h100 PHANTOM_HOST_TIME=deterministic $PK
  echo "== Phantom replaying the deterministic table, no GPU use"
  LD_LIBRARY_PATH=$LIB PHANTOM_KERNEL_TABLE=$OUT/pk-det.table PHANTOM_CLUSTER=dgx-h100 PHANTOM_HOST_TIME=deterministic $PK
} > "$OUT/pk.log" 2>&1
rm -f "$OUT/pk.table"

{
  echo "== phantom run -n 8 --profile"
  nvidia-smi --query-gpu=memory.used --format=csv
  "$LIB/phantom" run -n 8 --lib-dir "$LIB" --cluster dgx-h100 --profile --profile-table "$OUT/pk8.table" -- $PK
  cat "$OUT/pk8.table"
} > "$OUT/pk8.log" 2>&1
rm -f "$OUT/pk8.table"

if [ "${SKIP_TORCH:-0}" != 1 ]; then
  {
    echo "== GPT-2 124M, NVIDIA's libraries"
    $PY tests/programs/torch/gpt2.py --steps $STEPS
    echo "== GPT-2 124M, phantom run --profile"
    "$LIB/phantom" run -n 1 --lib-dir "$LIB" --cluster dgx-h100 --profile --profile-table "$OUT/gpt2.table" -- $PY tests/programs/torch/gpt2.py --steps $STEPS
  } > "$OUT/gpt2.log" 2>&1
fi
ls -la "$OUT"

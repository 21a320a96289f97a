#!/usr/bin/env bash
# Real NCCL collectives on this machine's GPUs (issue "multi-GPU ground truth"): tests/programs/nccl_bench.cu built
# against NVIDIA's NCCL from the torch install, one process driving all GPUs (-g), each operation swept from 8 B
# to $MAX (default 1G). Run from the repository root on a machine with several NVIDIA GPUs, nvcc and a full
# `pip install torch`. Writes $OUT/nccl-<op>.txt (nccl_bench's lines) and $OUT/nccl-env.txt (what NCCL chose,
# NCCL_DEBUG=INFO, for the all-reduce sweep).
set -u
. calibration/device-env.sh
NCCL=$SITE/nvidia/nccl
GPUS=${GPUS:-$(nvidia-smi -L | wc -l)}
MAX=${MAX:-1G}
$NVCC -cudart shared -arch=sm_90 -O2 -I"$NCCL/include" -L"$NCCL/lib" -lnccl -o /tmp/nccl_bench tests/programs/nccl_bench.cu
export LD_LIBRARY_PATH=$NCCL/lib:$NVLIB:${LD_LIBRARY_PATH:-}
{ nvidia-smi -L; nvidia-smi topo -m; } > "$OUT/nccl-env.txt" 2>&1
NCCL_DEBUG=INFO /tmp/nccl_bench -o allreduce -g "$GPUS" -b 8 -e 8 >> "$OUT/nccl-env.txt" 2>&1
for op in allreduce allgather reducescatter broadcast alltoall sendrecv; do
  /tmp/nccl_bench -o $op -g "$GPUS" -b 8 -e "$MAX" -f 4 -w 5 -n 20 > "$OUT/nccl-$op.txt" 2>&1
done
head -3 "$OUT"/nccl-*.txt

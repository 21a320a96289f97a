#!/usr/bin/env bash
# Many simulated ranks, one real GPU (docs/profiling.md): DDP GPT-2 124M on $RANKS ranks (default 64) under
# `phantom run --profile`; rank 0 executes on the GPU, the others follow. Run from the repository root on a
# machine with one NVIDIA GPU and a full `pip install torch`, with Phantom's staged libraries and `phantom` in
# $PHANTOM_LIB (default .devcarry). Writes $OUT/ddp<RANKS>.log (the ranks' output and phantom's summary, whose
# profiling line counts the launches that ran on the GPU) and $OUT/ddp<RANKS>.table.
set -u
. calibration/device-env.sh
RANKS=${RANKS:-64}
STEPS=${STEPS:-4}
{
  echo "== $RANKS ranks, DDP GPT-2 124M, $STEPS steps; $(nproc) CPU cores"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  /usr/bin/time -v "$LIB/phantom" run -n "$RANKS" --lib-dir "$LIB" --cluster dgx-h100 --profile \
    --profile-table "$OUT/ddp$RANKS.table" --progress never -- $PY tests/programs/torch/gpt2.py --ddp --steps "$STEPS"
} > "$OUT/ddp$RANKS.log" 2>&1
tail -30 "$OUT/ddp$RANKS.log"

#!/usr/bin/env bash
# What running NVIDIA's libraries and Phantom in one process does to the application's measured CPU time
# (docs/profiling.md, "Accuracy"): each model on NVIDIA's libraries, then under `phantom run --profile` (rank 0
# executes), then replaying the table that run recorded in measured host time without the GPU (the same
# program, Phantom's stubs alone). Run on a machine with one NVIDIA GPU, nvcc and a full `pip install torch`,
# from the repository root, with Phantom's staged files in $PHANTOM_LIB (default .devcarry) and
# PHANTOM_LOG=warn,phantom::host=info for the per-step host-time lines. Writes $OUT/exec-vs-replay.log;
# summarize it with `KIND=replay python3 calibration/profiling/summarize.py` (and KIND=profile).
set -u
. calibration/device-env.sh
bash calibration/host/measure.sh > /dev/null 2>&1
CL=$OUT/host-costs.toml
args() {
  case $1 in
    gpt2-124m) echo "tests/programs/torch/gpt2.py --steps 30" ;;
    gpt2-350m) echo "tests/programs/torch/gpt2.py --layers 24 --heads 16 --embd 1024 --init-on-device --steps 20" ;;
  esac
}
for m in ${MODELS:-gpt2-350m gpt2-124m}; do
  for r in $(seq 1 "${REPEATS:-2}"); do
    echo "== $m real"; $PY $(args $m)
    echo "== $m profile"
    "$LIB/phantom" run -n 1 --lib-dir "$LIB" --cluster "$CL" --profile --profile-table /tmp/$m.table -- $PY $(args $m)
    echo "== $m replay"
    "$LIB/phantom" run -n 1 --lib-dir "$LIB" --cluster "$CL" --kernel-table /tmp/$m.table --host-time measured -- $PY $(args $m)
  done
done > "$OUT/exec-vs-replay.log" 2>&1

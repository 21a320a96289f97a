#!/usr/bin/env bash
# Profiling mode's accuracy on real models (docs/profiling.md, "Accuracy"): each model's training step on the
# real GPU with NVIDIA's libraries, then under `phantom run --profile` (rank 0 executes on the same GPU). Runs on
# a machine with one NVIDIA GPU and a full `pip install torch`, from the repository root, with Phantom's staged
# libraries and `phantom` in $PHANTOM_LIB (default .devcarry). Writes to $OUT:
#   models.log            every run's output, in order, each headed `== <model> <real|profile|profile-det>`
#   <model>.table         the measurements of the (last) profiling run (measured host time)
#   gpt2-124m-det.table   GPT-2 124M profiled in deterministic host time with the dgx-h100 preset (what CI
#                         replays)
# CLUSTER (default dgx-h100) is the cluster the profiling runs simulate, e.g. the file calibration/host/measure.sh
# writes, whose [host] figures are NVIDIA's runtime's own costs on this machine.
set -u
. calibration/device-env.sh
MODELS=${MODELS:-"gpt2-124m gpt2-350m llama-1b"}
args() {
  case $1 in
    gpt2-124m) echo "tests/programs/torch/gpt2.py --steps ${STEPS_124M:-30}" ;;
    gpt2-350m) echo "tests/programs/torch/gpt2.py --layers 24 --heads 16 --embd 1024 --init-on-device --steps ${STEPS_350M:-20}" ;;
    llama-1b) echo "tests/programs/torch/llama.py --steps ${STEPS_LLAMA:-10}" ;;
  esac
}
CLUSTER=${CLUSTER:-dgx-h100}
phantom() { "$LIB/phantom" run -n 1 --lib-dir "$LIB" --cluster "$CLUSTER" "$@"; }
# REPEATS pairs of runs per model, real and profiled in turn, so that the machine's drift over minutes shows on
# both sides alike (summarize.py pools the steps of all runs of a kind).
REPEATS=${REPEATS:-3}
for m in $MODELS; do
  {
    for r in $(seq 1 "$REPEATS"); do
      echo "== $m real"
      $PY $(args $m)
      echo "== $m profile"
      phantom --profile --profile-table "$OUT/$m.table" -- $PY $(args $m)
    done
    if [ "$m" = gpt2-124m ]; then
      echo "== $m profile-det"
      # The preset's host costs, as the replay test in CI (torch::gpt2_124m_replays_...) uses.
      "$LIB/phantom" run -n 1 --lib-dir "$LIB" --cluster dgx-h100 --host-time deterministic --profile \
        --profile-table "$OUT/$m-det.table" -- $PY $(args $m)
    fi
  } >> "$OUT/models.log" 2>&1
done
ls -la "$OUT"

#!/usr/bin/env bash
# Host costs of NVIDIA's CUDA runtime (host_costs.cu), written as a cluster file ($OUT/host-costs.toml: the
# dgx-h100 preset with those `[host]` figures) for `measure-models.sh` (CLUSTER=...); with WITH_GPT2=1 also GPT-2
# 124M and 350M under `phantom run --profile` with that file, against the same programs on NVIDIA's libraries. Run on a
# machine with one NVIDIA GPU, nvcc and a full `pip install torch`, from the repository root, with Phantom's
# staged libraries and `phantom` in $PHANTOM_LIB (default .devcarry). Writes $OUT/host.log and $OUT/host-costs.toml.
set -u
. calibration/device-env.sh
$NVCC -cudart shared -arch=sm_90 -O2 -o /tmp/host_costs calibration/host/host_costs.cu
{
  echo "== host costs of NVIDIA's runtime"
  LD_LIBRARY_PATH=$NVLIB /tmp/host_costs | tee /tmp/host_costs.txt
} > "$OUT/host.log" 2>&1
api=$(grep "^get_device_ns=" /tmp/host_costs.txt | cut -d= -f2 | cut -d. -f1)
launch=$(grep "^launch_ns=" /tmp/host_costs.txt | cut -d= -f2 | cut -d. -f1)
cat > "$OUT/host-costs.toml" <<TOML
# The dgx-h100 preset with the host costs of NVIDIA's runtime measured by calibration/host/host_costs.cu.
preset = "dgx-h100"
[host]
api_call_ns = $api
launch_call_ns = $launch
TOML
if [ -n "${WITH_GPT2:-}" ]; then
  for args in "--steps 8" "--layers 24 --heads 16 --embd 1024 --init-on-device --steps 8"; do
    {
      echo "== real: gpt2.py $args"
      $PY tests/programs/torch/gpt2.py $args
      echo "== profile, measured host costs: gpt2.py $args"
      "$LIB/phantom" run -n 1 --lib-dir "$LIB" --cluster "$OUT/host-costs.toml" --profile --profile-table /tmp/t.table -- $PY tests/programs/torch/gpt2.py $args
    } >> "$OUT/host.log" 2>&1
  done
fi
cat "$OUT/host-costs.toml"

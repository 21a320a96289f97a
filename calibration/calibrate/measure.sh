#!/usr/bin/env bash
# `phantom calibrate` on a real GPU (docs/calibration.md). Runs on a machine with one NVIDIA GPU and a Python
# whose site-packages hold NVIDIA's cuBLASLt wheel (a stock `pip install torch`), from the repository root, with
# the `phantom` binary at $PHANTOM (default target/release/phantom; nothing else of Phantom is needed). Writes to
# $OUT:
#
#   env.txt          the GPU, its driver, python3's sys.path (where cuBLASLt is found)
#   h100-1.toml      `phantom calibrate --gemm` (the model taken from the device's name)
#   h100-2.toml      the same again with --gpu given, to show the spread between runs
#   report.txt       both runs' reports
#
# calibration/calibrate/h100-sxm-80gb/ holds what these commands wrote on an H100 SXM 80 GB on 2026-11-24
# (run by hand through the device tool: gpu-profile.toml is h100-1.toml, gpu-profile-run2.toml is h100-2.toml).
set -u
OUT=${OUT:-/tmp/phantom-out}
PHANTOM=${PHANTOM:-target/release/phantom}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
  echo "python3: $(command -v python3)"
  python3 -c 'import sys; print(sys.path)'
} > "$OUT/env.txt" 2>&1
{
  echo "\$ phantom calibrate --gemm -o \$OUT/h100-1.toml"
  "$PHANTOM" calibrate --gemm -o "$OUT/h100-1.toml" 2>&1
  echo "\$ phantom calibrate --gpu h100-sxm-80gb --gemm -o \$OUT/h100-2.toml"
  "$PHANTOM" calibrate --gpu h100-sxm-80gb --gemm -o "$OUT/h100-2.toml" 2>&1
} > "$OUT/report.txt"
cat "$OUT/env.txt" "$OUT/report.txt"

#!/usr/bin/env bash
# Measures, on a machine with one real NVIDIA GPU and a stock torch (real NVIDIA libraries), what Phantom's
# PyTorch tests compare against: the GPU's memory, the SDPA backend torch picks, the GPT-2 test program's step
# times and peak memory (tests/programs/torch/gpt2.py), the batch at which it runs out of memory, and the
# cuBLASLt / cuDNN call logs of one step. Writes everything under $OUT (default ./measure-out).
#
#   bash calibration/torch/measure-gpt2.sh
set -uo pipefail
out="${OUT:-./measure-out}"
mkdir -p "$out"
prog="$(cd "$(dirname "$0")/../.." && pwd)/tests/programs/torch/gpt2.py"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  python3 - <<'PY'
import torch
p = torch.cuda.get_device_properties(0)
free, total = torch.cuda.mem_get_info()
print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version(), "nccl", torch.cuda.nccl.version())
print("device", p.name, "total_memory", p.total_memory, "mem_get_info", free, total, "sms", p.multi_processor_count)
for shape in [(8, 12, 1024, 64), (8, 16, 1024, 64), (4, 32, 2048, 128)]:
    q = torch.empty(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    print("sdp_choice", shape, "causal", torch._fused_sdp_choice(q, q, q, is_causal=True))
PY
} >"$out/env.txt" 2>&1
run() { # name, args...
  local name="$1"; shift
  python3 "$prog" "$@" >"$out/$name.txt" 2>&1
  echo "exit $?" >>"$out/$name.txt"
}
run gpt2-124m-b8 --steps 6
run gpt2-350m-b8 --layers 24 --heads 16 --embd 1024 --steps 6
for b in 32 48 64 96; do run gpt2-124m-b$b --batch $b --steps 2; done
# Call logs of one step (two steps, the first warms up): which cuBLASLt and cuDNN calls torch makes.
CUBLASLT_LOG_LEVEL=5 CUBLASLT_LOG_FILE="$out/cublaslt-%i.log" CUDNN_LOGLEVEL_DBG=3 CUDNN_LOGDEST_DBG="$out/cudnn.log" \
  python3 "$prog" --layers 2 --steps 2 >"$out/logged-run.txt" 2>&1
cat "$out"/cublaslt-*.log > "$out/cublaslt.log" 2>/dev/null; rm -f "$out"/cublaslt-*.log
for f in cublaslt.log cudnn.log; do [ -f "$out/$f" ] && gzip -9 "$out/$f"; done
# Per-kernel GPU times of one steady step (torch.profiler), for the kernel-time table work.
python3 - "$prog" >"$out/profile.txt" 2>&1 <<'PY'
import runpy, sys, torch
from torch.profiler import profile, ProfilerActivity
sys.argv = [sys.argv[1], "--steps", "3"]
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    runpy.run_path(sys.argv[0], run_name="__main__")
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=60))
PY
ls -la "$out"

#!/usr/bin/env bash
# On a machine with one real NVIDIA GPU and a stock torch: GPT-2 124M and 350M step times and peak memory
# (tests/programs/torch/gpt2.py), and a torch.profiler trace of three steps of GPT-2 124M (batch 8 x 1024), whose
# CUDA kernel events (name, grid, block, duration) are what a kernel-time table is made from. Writes under
# $OUT (default ./profile-out): runs.txt, gpt2-124m-profile.json.gz, profile-table.txt.
set -uo pipefail
out="${OUT:-./profile-out}"
mkdir -p "$out"
prog="$(cd "$(dirname "$0")/../.." && pwd)/tests/programs/torch/gpt2.py"
{
  echo "== gpt2-124m-b8"; python3 "$prog" --steps 6 2>&1 | grep -v Warning
  echo "== gpt2-350m-b8"; python3 "$prog" --layers 24 --heads 16 --embd 1024 --steps 6 2>&1 | grep -v Warning
  echo "== gpt2-124m-b8 ddp-1"; RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29533 python3 "$prog" --ddp --steps 6 2>&1 | grep -v Warning
} >"$out/runs.txt" 2>&1
python3 - "$prog" "$out" >"$out/profile-table.txt" 2>&1 <<'PY'
import runpy, sys, torch
from torch.profiler import profile, ProfilerActivity, schedule
prog, out = sys.argv[1], sys.argv[2]
sys.argv = [prog, "--steps", "6"]
# Warm up 3 steps outside the profiler by running the program's main with a profiler schedule instead.
prof = profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU], schedule=schedule(wait=2, warmup=1, active=3))
orig_say = None
import builtins
mod = runpy.run_path(prog, run_name="gpt2")
import os
os.environ.setdefault("RANK", "0")
step_hook = {"n": 0}
orig_range_pop = torch.cuda.nvtx.range_pop
def range_pop():
    r = orig_range_pop()
    prof.step()
    return r
torch.cuda.nvtx.range_pop = range_pop
prof.start()
mod["main"]()
prof.stop()
prof.export_chrome_trace(out + "/gpt2-124m-profile.json")
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=40))
PY
gzip -9 -f "$out/gpt2-124m-profile.json"
ls -la "$out"

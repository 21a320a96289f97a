"""What the PyTorch test programs (gpt2.py, llama.py) share, apart from their models: the command-line options
every one takes, process-group setup, DDP / FSDP wrapping, and the timed training loop with its output lines.

Output: a `model:` line, then per step `rank R step N time_ms T loss L cpu_ms C thread_ms H wall_ms W` — T from
time.perf_counter() around the (synchronised) step, under Phantom simulated time; C and H the CPU time the
process and the calling thread used for it; W the real wall-clock time it took, from /proc/uptime, which no
clock virtualisation touches (resolution 10 ms) — and the memory statistics after the last step. Each step is
an NVTX range `step N`, which Phantom records in its trace.
"""
import os
import time

import torch
import torch.nn as nn


def uptime():
    """Real seconds since boot (10 ms resolution), whatever the process's clocks say."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def say(line):
    """One line in one write(2): the ranks share one stdout pipe, so lines must not interleave."""
    os.write(1, (line + "\n").encode())


def add_options(p, batch, seq):
    """The options every program takes, after its model's: batch shape, steps, parallelism, initialisation."""
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--seq", type=int, default=seq)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--ddp", action="store_true")
    p.add_argument("--fsdp", action="store_true")
    p.add_argument("--init-on-device", action="store_true", help="create the parameters on the GPU directly")


def run(a, build, vocab):
    """Builds the model with `build()` (on the GPU directly with --init-on-device, else on the CPU and then
    moved), wraps it for --ddp / --fsdp (each of its `blocks` sharded, then the whole), and trains it for
    a.steps steps on random tokens in [0, vocab) with bf16 autocast, gradient clipping and fused AdamW."""
    distributed = a.ddp or a.fsdp
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    if distributed:
        torch.distributed.init_process_group("nccl", device_id=torch.device("cuda", local))
    torch.manual_seed(0)
    if a.init_on_device:
        with torch.device("cuda"):
            model = build()
    else:
        model = build().cuda()
    params = sum(p.numel() for p in model.parameters())
    if a.ddp:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[local])
    elif a.fsdp:
        from torch.distributed.fsdp import fully_shard
        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    if rank == 0:
        say(f"model: {params} parameters, {a.layers} layers, batch {a.batch} x {a.seq}")
    for step in range(a.steps):
        x = torch.randint(0, vocab, (a.batch, a.seq), device="cuda")
        y = torch.randint(0, vocab, (a.batch, a.seq), device="cuda")
        torch.cuda.synchronize()
        t0, cpu0, thread0, wall0 = time.perf_counter(), time.process_time(), time.thread_time(), uptime()
        torch.cuda.nvtx.range_push(f"step {step}")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
        dt = time.perf_counter() - t0
        cpu, thread, wall = time.process_time() - cpu0, time.thread_time() - thread0, uptime() - wall0
        say(f"rank {rank} step {step} time_ms {dt * 1e3:.3f} loss {loss_value:.4f} "
            f"cpu_ms {cpu * 1e3:.1f} thread_ms {thread * 1e3:.1f} wall_ms {wall * 1e3:.0f}")
    say(f"rank {rank} max_memory_allocated {torch.cuda.max_memory_allocated()} "
        f"max_memory_reserved {torch.cuda.max_memory_reserved()}")
    if distributed:
        torch.distributed.destroy_process_group()

"""A GPT-2-style model trained on random tokens: the PyTorch test program of Phantom's suite.

No downloads, no data: the model is defined here. Prints one line per step with the step time measured by
time.perf_counter() around the step (synchronised) — under Phantom, simulated time — plus the host CPU time
the process used for the step and the real wall-clock time it took (from /proc/uptime, which no clock
virtualisation touches), and the memory statistics after the last step. Each step is an NVTX range
`step N`, which Phantom records in its trace.

  python gpt2.py [--layers 12 --heads 12 --embd 768 --batch 8 --seq 1024 --steps 5 --ddp|--fsdp]
                 [--init-on-device]
"""
import argparse
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, embd, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(embd)
        self.attn = nn.Linear(embd, 3 * embd)
        self.proj = nn.Linear(embd, embd)
        self.ln_2 = nn.LayerNorm(embd)
        self.fc = nn.Linear(embd, 4 * embd)
        self.fc_proj = nn.Linear(4 * embd, embd)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, heads, embd, vocab=50304, ctx=1024):
        super().__init__()
        self.wte = nn.Embedding(vocab, embd)
        self.wpe = nn.Embedding(ctx, embd)
        self.blocks = nn.ModuleList(Block(embd, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(embd)
        self.lm_head = nn.Linear(embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def uptime():
    """Real seconds since boot (10 ms resolution), whatever the process's clocks say."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def say(line):
    """One line in one write(2): the ranks share one stdout pipe, so lines must not interleave."""
    os.write(1, (line + "\n").encode())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--embd", type=int, default=768)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--ddp", action="store_true")
    p.add_argument("--fsdp", action="store_true")
    p.add_argument("--init-on-device", action="store_true", help="create the parameters on the GPU directly")
    a = p.parse_args()

    distributed = a.ddp or a.fsdp
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    if distributed:
        torch.distributed.init_process_group("nccl", device_id=torch.device("cuda", local))
    torch.manual_seed(0)
    if a.init_on_device:
        with torch.device("cuda"):
            model = GPT(a.layers, a.heads, a.embd)
    else:
        model = GPT(a.layers, a.heads, a.embd).cuda()
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
        x = torch.randint(0, 50304, (a.batch, a.seq), device="cuda")
        y = torch.randint(0, 50304, (a.batch, a.seq), device="cuda")
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


if __name__ == "__main__":
    main()

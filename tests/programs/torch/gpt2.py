"""A GPT-2-style model trained on random tokens: the PyTorch test program of Phantom's suite.

No downloads, no data: the model is defined here; the options every program takes, the training loop and its
output lines are train.py's (beside this file). Prints one line per step with the step time measured by
time.perf_counter() around the step (synchronised) — under Phantom, simulated time — plus the host CPU time
the process used for the step and the real wall-clock time it took (from /proc/uptime, which no clock
virtualisation touches), and the memory statistics after the last step. Each step is an NVTX range
`step N`, which Phantom records in its trace.

  python gpt2.py [--layers 12 --heads 12 --embd 768 --batch 8 --seq 1024 --steps 5 --ddp|--fsdp]
                 [--init-on-device]
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import train


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--embd", type=int, default=768)
    train.add_options(p, batch=8, seq=1024)
    a = p.parse_args()
    train.run(a, lambda: GPT(a.layers, a.heads, a.embd), vocab=50304)


if __name__ == "__main__":
    main()

"""A Llama-style decoder trained on random tokens: a PyTorch test program of Phantom's suite, beside gpt2.py.

No downloads, no data, no transformers: the model is defined here. Each block is RMSNorm -> grouped-query
attention (rotary position embeddings on q and k, the kv heads repeated with repeat_interleave, causal
scaled_dot_product_attention) -> output projection, then RMSNorm -> SwiGLU MLP (w2(silu(w1 x) * w3 x)); then a
final RMSNorm and an untied LM head. No biases. The RoPE cos/sin tables are buffers built once, on the
model's device.

Default size (Llama 3.2 1B's shape with Llama 2's 32000-token vocabulary): dim 2048, 16 layers, 32 heads of
64, 8 kv heads, MLP hidden 8192 (given, not the Llama rule: 2/3 * 4 * dim rounded up to a multiple of 256
would be 5632), vocab 32000 — 1,104,218,112 parameters:
  2 * vocab * dim  +  layers * (2 * dim^2 + 2 * dim * dim * kv_heads / heads + 3 * dim * hidden + 2 * dim)  +  dim.

Same command line style and output as gpt2.py (both use train.py), so the same scripts and tests parse both: a
`model:` line, one line per step with the step time measured by time.perf_counter() around the step
(synchronised) — under Phantom, simulated time — plus the host CPU time the process used for the step and the
real wall-clock time it took (from /proc/uptime, which no clock virtualisation touches), and the memory
statistics after the last step. Each step is an NVTX range `step N`, which Phantom records in its trace. On a
real GPU run it with
python3; under Phantom, `phantom run [-n N] -- python3 llama.py ...` (with PYTHONPATH at the pinned torch).

  python llama.py [--layers 16 --heads 32 --kv-heads 8 --dim 2048 --hidden 8192 --vocab 32000
                   --batch 4 --seq 2048 --steps 5 --ddp|--fsdp] [--init-on-device]
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import train


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim, ctx, theta=10000.0):
    """cos and sin of position * frequency, (ctx, head_dim), each frequency twice (rotate-half layout)."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(ctx, dtype=torch.float32), freqs)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def rotate(x, cos, sin):
    """RoPE on x (b, heads, t, head_dim) in float32, returned in x's dtype."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    return (xf * cos + torch.cat((-x2, x1), dim=-1) * sin).type_as(x)


class Block(nn.Module):
    def __init__(self, dim, heads, kv_heads, hidden):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.attn_norm = RMSNorm(dim)
        self.wq = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(heads * self.head_dim, dim, bias=False)
        self.mlp_norm = RMSNorm(dim)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.wk(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.wo(y.transpose(1, 2).contiguous().view(b, t, self.heads * self.head_dim))
        h = self.mlp_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Llama(nn.Module):
    def __init__(self, layers, heads, kv_heads, dim, hidden, vocab, ctx):
        super().__init__()
        assert dim % heads == 0 and heads % kv_heads == 0 and (dim // heads) % 2 == 0
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, kv_heads, hidden) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        cos, sin = rope_tables(dim // heads, ctx)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, idx, targets):
        t = idx.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.tok_embeddings(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--hidden", type=int, default=8192, help="SwiGLU hidden size (Llama's rule would give 5632)")
    p.add_argument("--vocab", type=int, default=32000)
    train.add_options(p, batch=4, seq=2048)
    a = p.parse_args()
    shape = (a.layers, a.heads, a.kv_heads, a.dim, a.hidden, a.vocab, a.seq)
    train.run(a, lambda: Llama(*shape), vocab=a.vocab)


if __name__ == "__main__":
    main()

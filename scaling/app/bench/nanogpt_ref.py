"""A plain-PyTorch reference of the model's shape, written the way nanoGPT writes models.

The benchmark measures it beside ``scaling.model`` so its speed is read as a ratio
against the simplest thing one could write: the same widths, depths, heads, SwiGLU
width, vocabulary and tied head, but with nothing routed through ``scaling.kernels``:
separate gate and up matrices as in the LLaMA reference code, RMSNorm and RoPE in a few
lines of tensor code, and the full logits materialised before ``F.cross_entropy``.
Only the benchmark uses it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RefRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _rotate(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class RefAttention(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d, 3 * d, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class RefMLP(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=False)  # gate
        self.w3 = nn.Linear(d, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, d, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class RefBlock(nn.Module):
    def __init__(self, d: int, n_head: int, hidden: int):
        super().__init__()
        self.ln_1 = RefRMSNorm(d)
        self.attn = RefAttention(d, n_head)
        self.ln_2 = RefRMSNorm(d)
        self.mlp = RefMLP(d, hidden)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.ln_1(x), cos, sin)
        return x + self.mlp(self.ln_2(x))


class RefGPT(nn.Module):
    """Same shape as ``scaling.model.Transformer(args)`` with tied embeddings."""

    def __init__(self, d_model: int, n_layers: int, n_heads: int, ffn_hidden: int, vocab_size: int,
                 seq_len: int, theta: float = 10000.0):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d_model)
        self.h = nn.ModuleList(RefBlock(d_model, n_heads, ffn_hidden) for _ in range(n_layers))
        self.ln_f = RefRMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as nanoGPT does
        hs = d_model // n_heads
        freqs = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
        angles = torch.outer(torch.arange(seq_len).float(), freqs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layers) if name.endswith(("c_proj.weight", "w2.weight")) else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx)
        for block in self.h:
            x = block(x, self.cos[:T], self.sin[:T])
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))

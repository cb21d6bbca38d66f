"""A LLaMA-style decoder (Touvron et al. 2023), small enough to read in one sitting.

Pre-norm RMSNorm (Zhang & Sennrich 2019), causal multi-head attention with rotary
position embeddings (Su et al. 2021) through ``F.scaled_dot_product_attention``, a SwiGLU
MLP (Shazeer 2020), no biases, a final RMSNorm and an LM head that may share the token
embedding's weight. With ``checkpointing=True`` each block keeps only its input for the
backward pass and runs its forward again there (Chen et al. 2016).

The four hot ops (RMSNorm, SwiGLU, RoPE, LM head + cross-entropy) are called through an
:class:`scaling.kernels.Ops` bundle, so ``kernels=eager|compile|triton`` swaps their
implementation with no change here. Shapes: B batch, T time, C = d_model, nh heads,
nkv key/value heads, hs head size, H MLP hidden width, V vocabulary.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from analysis.common.errors import InputError
from scaling.config import ModelArgs
from scaling.kernels import Ops, get_ops


class RMSNorm(nn.Module):
    """RMSNorm with a learned gain and no bias."""

    def __init__(self, dim: int, eps: float, ops: Ops):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.ops = ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.rms_norm(x, self.weight, self.eps)


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, each (T, hs // 2), in float32.

    Pair i of the half-split layout turns at frequency theta^(-2i / hs) (Su et al. 2021).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)  # (T, hs/2)
    return angles.cos().float(), angles.sin().float()


class Attention(nn.Module):
    """Causal self-attention with RoPE; grouped-query when n_kv_heads < n_heads."""

    def __init__(self, a: ModelArgs, ops: Ops):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = a.n_heads, a.n_kv_heads, a.head_dim
        # one matmul for q, k and v: fewer, larger GEMMs run faster than three
        self.qkv = nn.Linear(a.d_model, (a.n_heads + 2 * a.n_kv_heads) * a.head_dim, bias=False)
        self.proj = nn.Linear(a.n_heads * a.head_dim, a.d_model, bias=False)
        self.ops = ops

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        nh, nkv, hs = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.qkv(x).view(B, T, nh + 2 * nkv, hs)  # (B, T, nh + 2 nkv, hs)
        # q (B, nh, T, hs), k and v (B, nkv, T, hs); one op, so a fused kernel can write
        # the gradient of the whole projection in one buffer
        q, k, v = self.ops.rope_qkv(qkv, cos, sin, nh, nkv)
        # grouped-query: each key/value head serves nh / nkv query heads, without copies
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=nkv != nh)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)                 # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, a: ModelArgs, ops: Ops):
        super().__init__()
        self.gate_up = nn.Linear(a.d_model, 2 * a.ffn_hidden, bias=False)  # gate and up in one GEMM
        self.down = nn.Linear(a.ffn_hidden, a.d_model, bias=False)
        self.ops = ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # gate and up are the halves of (B, T, 2H); one op, so a fused kernel can write
        # their gradient in one buffer
        return self.down(self.ops.swiglu_packed(self.gate_up(x)))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, a: ModelArgs, ops: Ops):
        super().__init__()
        self.attn_norm = RMSNorm(a.d_model, a.norm_eps, ops)
        self.attn = Attention(a, ops)
        self.mlp_norm = RMSNorm(a.d_model, a.norm_eps, ops)
        self.mlp = MLP(a, ops)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """The decoder. ``forward(idx, targets)`` returns the mean loss; without targets, logits.

    ``checkpointing``: activation checkpointing per block, which trades about one more
    forward pass of the blocks for their activations' memory (Chen et al. 2016)."""

    def __init__(self, a: ModelArgs, kernels: str = "eager", checkpointing: bool = False):
        super().__init__()
        self.args = a
        self.checkpointing = checkpointing
        self.ops = get_ops(kernels)
        self.tok_emb = nn.Embedding(a.vocab_size, a.d_model)
        self.blocks = nn.ModuleList(Block(a, self.ops) for _ in range(a.n_layers))
        self.norm = RMSNorm(a.d_model, a.norm_eps, self.ops)
        self.lm_head = None if a.tie_embeddings else nn.Linear(a.d_model, a.vocab_size, bias=False)
        cos, sin = rope_tables(a.seq_len, a.head_dim, a.rope_theta)
        # not persistent: derived from the config, so checkpoints need not carry them
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation (Radford et al. 2019): N(0, 0.02) everywhere, and the
        projections that write into the residual stream scaled by 1/sqrt(2 n_layers) so
        the stream's variance does not grow with depth. PyTorch's default N(0, 1) embedding
        with a tied head would start the loss near 58 instead of ln V."""
        std = self.args.init_std
        resid_std = std / math.sqrt(2 * self.args.n_layers)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                nn.init.ones_(p)  # RMSNorm gains
            elif name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=resid_std)
            else:
                nn.init.normal_(p, mean=0.0, std=std)

    @property
    def head_weight(self) -> torch.Tensor:
        """(V, C): the LM head, or the token embedding when tied."""
        return self.tok_emb.weight if self.lm_head is None else self.lm_head.weight

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states (B, T, C) for token ids idx (B, T)."""
        B, T = idx.shape
        if T > self.args.seq_len:  # the rotary tables stop there
            raise InputError(f"a sequence of {T} tokens exceeds the model's context of {self.args.seq_len}",
                             field="seq_len", fix=f"crop inputs to {self.args.seq_len} tokens or build the model "
                             "with a longer seq_len")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # (T, hs/2)
        x = self.tok_emb(idx)                            # (B, T, C)
        for block in self.blocks:
            if self.checkpointing and torch.is_grad_enabled():
                # non-reentrant: works with autograd.Function kernels, torch.compile and DDP;
                # no RNG state to restore, as nothing in a block draws random numbers
                x = checkpoint(block, x, cos, sin, use_reentrant=False, preserve_rng_state=False)
            else:
                x = block(x, cos, sin)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None, z_loss: float = 0.0) -> torch.Tensor:
        """Logits (B, T, V) without targets; with them, the mean cross-entropy plus
        ``z_loss`` * mean(logsumexp^2) (Chowdhery et al. 2022, Sec. 5)."""
        x = self.hidden(idx)  # (B, T, C)
        if targets is None:
            return x @ self.head_weight.t()  # (B, T, V)
        B, T, C = x.shape
        # head and loss go through one op so a fused kernel never materialises (B*T, V) logits
        return self.ops.linear_cross_entropy(x.reshape(B * T, C), self.head_weight, targets.reshape(B * T),
                                             z_loss=z_loss)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay on matrices (linear and embedding weights), none on norm gains."""
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    def num_params(self) -> int:
        """Parameters of the module, shared (tied) tensors counted once."""
        return sum(p.numel() for p in self.parameters())

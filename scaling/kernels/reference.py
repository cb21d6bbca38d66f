"""Plain-PyTorch versions of the four ops: the eager path and the kernels' test reference.

Each function computes in the input's dtype (upcasting reductions to at least float32),
exactly as the model would without fused kernels. Float64 inputs stay float64, so the
same functions on upcast inputs are the kernels' test reference. Conventions are
documented in ``scaling/kernels/__init__.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """At least float32: half-precision reductions lose digits, float64 must stay float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * weight."""
    xf = _upcast(x)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * _upcast(weight)).to(x.dtype)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU's gating (Shazeer 2020, "GLU Variants Improve Transformer"): silu(gate) * up."""
    return F.silu(gate) * up


def swiglu_packed(gate_up: torch.Tensor) -> torch.Tensor:
    """:func:`swiglu` of the two halves of a fused (..., 2H) gate/up projection."""
    gate, up = gate_up.chunk(2, dim=-1)  # (..., H) each
    return swiglu(gate, up)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) in the half-split layout. x (..., T, hs)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotate q (B, nh, T, hs) and k (B, nkv, T, hs) by cos/sin (T, hs // 2)."""
    return rotate(q, cos, sin), rotate(k, cos, sin)


def rope_qkv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int, n_kv_heads: int):
    """Split a fused projection qkv (B, T, nh + 2 nkv, hs) into q (B, nh, T, hs) and
    k, v (B, nkv, T, hs), and rotate q and k by cos/sin (T, hs // 2)."""
    q, k, v = qkv.split([n_heads, n_kv_heads, n_kv_heads], dim=2)
    q, k = apply_rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    return q, k, v.transpose(1, 2)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = -100, z_loss: float = 0.0) -> torch.Tensor:
    """LM head plus mean cross-entropy over non-ignored targets, materialising the logits.

    hidden (M, C), weight (V, C), targets (M,). The optional z-loss term
    z_loss * mean(logsumexp(logits)^2) is PaLM's (Chowdhery et al. 2022, Sec. 5).
    Both means run over the non-ignored targets; a batch whose targets are all ignored
    gives 0 (not 0/0 = NaN), so a fully padded micro-batch cannot poison training.
    """
    logits = _upcast(hidden @ weight.t())  # (M, V)
    valid = targets != ignore_index
    n = valid.sum().clamp(min=1)
    loss = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="sum") / n
    if z_loss:
        lse = torch.logsumexp(logits, dim=-1)
        loss = loss + z_loss * torch.where(valid, lse.pow(2), 0.0).sum() / n
    return loss

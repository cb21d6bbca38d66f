"""Implementations of the four hot ops, selected by one option.

``get_ops(name)`` returns an :class:`Ops` bundle; the model calls only these functions
(the four ops, two of them also in a "fused projection" form), so switching
``kernels=eager|compile|triton|auto`` changes no model code.

Shapes and conventions (shared by every implementation):

``rms_norm(x, weight, eps)``
    x (..., C), weight (C,) -> (..., C). y = x / sqrt(mean(x^2) + eps) * weight.
``swiglu(gate, up)``
    gate, up (..., H) -> (..., H). silu(gate) * up (Shazeer 2020).
``swiglu_packed(gate_up)``
    gate_up (..., 2H) -> (..., H): swiglu of its two halves; the Triton version writes
    the gradient of the fused projection in one buffer.
``apply_rope(q, k, cos, sin)``
    q (B, nh, T, hs), k (B, nkv, T, hs), cos/sin (T, hs // 2) -> (q', k'), rotating the
    two halves of the head dimension (the "rotate_half" layout used by LLaMA ports):
    x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin, with x1 = x[..., :hs/2], x2 = x[..., hs/2:].
``rope_qkv(qkv, cos, sin, nh, nkv)``
    qkv (B, T, nh + 2 nkv, hs) -> q (B, nh, T, hs), k, v (B, nkv, T, hs), q and k rotated;
    the Triton version writes the gradient of the fused projection in one buffer.
``linear_cross_entropy(hidden, weight, targets, ignore_index=-100, z_loss=0.0)``
    hidden (M, C), weight (V, C), targets (M,) -> scalar: mean cross-entropy of
    hidden @ weight.T over targets != ignore_index, plus z_loss * mean(logsumexp^2)
    (PaLM's auxiliary z-loss, Chowdhery et al. 2022); 0 when every target is ignored.
    The fused version does not range-check targets on the device; callers check each
    batch once on the host with :func:`check_targets`.

The Triton versions are ``torch.library`` custom ops (``scaling::rms_norm`` and so on),
with fake implementations and registered backward formulas, so ``torch.compile`` traces
a model using them without graph breaks.

The Triton versions and their tests are described in ``docs/kernels.md``.
"""
# Deferred imports: the implementations are imported inside get_ops: the Triton ones so that
# triton stays optional (a machine without it gets a ConfigError naming kernels= when a run asks
# for them, not an ImportError when scaling.model is imported) and their custom ops are
# registered only in runs that use them; the eager ones beside them for symmetry, since every
# importer of this package has loaded torch already.
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional

from analysis.common.errors import ConfigError, InputError

KERNEL_CHOICES = ("eager", "compile", "triton", "auto")


def _swiglu_of_halves(swiglu: Callable, gate_up):
    gate, up = gate_up.chunk(2, dim=-1)
    return swiglu(gate, up)


def _rope_of_split(apply_rope: Callable, qkv, cos, sin, n_heads: int, n_kv_heads: int):
    q, k, v = qkv.split([n_heads, n_kv_heads, n_kv_heads], dim=2)
    q, k = apply_rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    return q, k, v.transpose(1, 2)


@dataclass(frozen=True)
class Ops:
    """The op bundle. The fused-projection forms default to the separate ops applied to
    the projection's parts, so a bundle built from the four ops alone still works."""

    name: str
    rms_norm: Callable
    swiglu: Callable
    apply_rope: Callable
    linear_cross_entropy: Callable
    swiglu_packed: Optional[Callable] = None
    rope_qkv: Optional[Callable] = None

    def __post_init__(self):
        if self.swiglu_packed is None:
            object.__setattr__(self, "swiglu_packed", functools.partial(_swiglu_of_halves, self.swiglu))
        if self.rope_qkv is None:
            object.__setattr__(self, "rope_qkv", functools.partial(_rope_of_split, self.apply_rope))


def resolve_kernels(name: str, device_type: str) -> str:
    """``auto`` means triton on CUDA and eager elsewhere (compile pays off on GPUs only)."""
    if name not in KERNEL_CHOICES:
        raise ConfigError(f"unknown kernels {name!r}", field="kernels",
                          fix="use one of " + ", ".join(KERNEL_CHOICES))
    if name == "auto":
        return "triton" if device_type == "cuda" else "eager"
    return name


def get_ops(name: str) -> Ops:
    """The op bundle for a resolved kernel choice.

    ``compile`` uses the eager ops: the trainer wraps the whole model in
    ``torch.compile``, which fuses them itself.
    """
    if name in ("eager", "compile"):
        from . import reference as r

        return Ops(name, r.rms_norm, r.swiglu, r.apply_rope, r.linear_cross_entropy, r.swiglu_packed,
                   r.rope_qkv)
    if name == "triton":
        try:
            from .cross_entropy import fused_linear_cross_entropy
            from .rms_norm import rms_norm
            from .rope import apply_rope, rope_qkv
            from .swiglu import swiglu, swiglu_packed
        except ImportError as e:  # triton missing (macOS, Windows)
            raise ConfigError(f"triton kernels unavailable ({e})", field="kernels",
                              fix="install triton (Linux) or use kernels=eager") from None
        return Ops(name, rms_norm, swiglu, apply_rope, fused_linear_cross_entropy, swiglu_packed, rope_qkv)
    raise ConfigError(f"unresolved kernels {name!r}", field="kernels",
                      fix="pass the result of resolve_kernels()")


def check_targets(targets, vocab_size: int, ignore_index: int = -100) -> None:
    """Raise :class:`InputError` unless every target id is in [0, vocab_size) or equals
    ``ignore_index``.

    Meant for the host side, once per batch before it is sent to the device (a numpy
    array or a CPU tensor): the fused cross-entropy does not check, because reading a flag
    back from a GPU on every call would stall the loop. Called on a GPU tensor it costs
    one such read.
    """
    t = targets[targets != ignore_index]  # 1-D, for numpy arrays and tensors alike
    if t.shape[0] == 0:
        return
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= vocab_size:
        bad = hi if hi >= vocab_size else lo
        raise InputError(f"target id {bad} is outside [0, {vocab_size}) and is not ignore_index={ignore_index}",
                         field="linear_cross_entropy",
                         fix="check the tokenizer's vocabulary size against the model's")

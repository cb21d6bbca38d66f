"""The model ladder: the preset table, shapes for a target size, and a config's architecture.

Model sizes live in ONE table, :data:`PRESETS`. Their names give the approximate
non-embedding parameter count (Kaplan et al. 2020's N), which does not depend on the
vocabulary; ``docs/trainer.md`` lists the exact counts. The sweeps' Hydra ``model``
group is generated from this table (``sweeps.schema``).

Imports neither torch nor numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

from analysis.common.errors import ConfigError

from scaling import flops as F
from scaling.shapes import ModelArgs

from .schema import TrainConfig

# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """One rung of the ladder: width, depth, heads (head size = d_model / n_heads)."""

    d_model: int
    n_layers: int
    n_heads: int


#: The model ladder. Depth grows more slowly than width: the aspect ratio d_model /
#: n_layers goes from 32 on the CPU-scale rungs to 64 in the middle and about 100 at 1B,
#: the range of the Chinchilla (Hoffmann et al. 2022, Table A9) and OLMo ladders. The
#: 85m and 300m rungs reuse GPT-2 small's and medium's shapes so that benchmarks compare
#: with nanoGPT directly. Head size is 32 on the small rungs, 64-128 above. The names are
#: the approximate non-embedding parameter counts.
PRESETS: dict[str, Preset] = {
    "atto": Preset(32, 1, 1),          # ~16k: the demo's smallest rungs, below nano,
    "femto": Preset(32, 2, 1),         # ~33k  so that on 2 CPU cores the smaller models can
    "pico": Preset(48, 2, 2),          # ~56k  train past the largest one's compute
    "nano": Preset(64, 2, 2),          # ~0.1M
    "micro": Preset(96, 3, 3),         # ~0.33M
    "tiny": Preset(128, 4, 4),         # ~0.85M
    "mini": Preset(192, 5, 6),         # ~2.2M
    "small": Preset(256, 6, 8),        # ~4.8M
    "10m": Preset(384, 6, 6),          # ~10.6M
    "25m": Preset(512, 8, 8),          # ~25.7M
    "50m": Preset(640, 10, 10),        # ~49.6M
    "85m": Preset(768, 12, 12),        # ~85M: GPT-2 small's shape (124M with a 50k vocabulary)
    "300m": Preset(1024, 24, 16),      # ~304M: GPT-2 medium's shape (355M with a 50k vocabulary)
    "680m": Preset(1536, 24, 16),      # ~680M
    "1b": Preset(2048, 20, 16),        # ~1.01B: OLMo-1B's width and heads
}

#: Vocabulary of the default byte-level tokenizer.
BYTE_VOCAB = 256


# --------------------------------------------------------------------------- architecture


def swiglu_hidden(d_model: int, multiple_of: int = 64) -> int:
    """LLaMA's SwiGLU width: 2/3 of a 4d MLP, so the three matrices cost what two 4d ones
    would (Shazeer 2020; Touvron et al. 2023), rounded up to a multiple for fast matmuls."""
    h = math.ceil(8 * d_model / 3)
    return multiple_of * math.ceil(h / multiple_of)


def shape_for_params(target: float, multiple_of: int = 64) -> Preset:
    """The ladder-like shape whose non-embedding parameter count is nearest ``target``.

    Widths are tried in steps of 16; each takes the head size and, give or take one
    layer, the depth that the ladder's aspect ratio gives at that width (interpolated in
    log width between neighbouring presets), so a requested size lands on a shape
    consistent with the named rungs.
    """
    if not target or target <= 0:
        raise ConfigError(f"needs a positive parameter count, got {target!r}", field="model_params",
                          fix="e.g. model=auto model_params=3e6")
    rungs = sorted(PRESETS.values(), key=lambda p: p.d_model)
    best, best_err = None, math.inf
    for d in range(32, 8192 + 1, 16):
        aspect, head = _interp_rung(rungs, d)
        n_heads = max(1, round(d / head))
        while d % n_heads or (d // n_heads) % 2:
            n_heads -= 1
        depth = max(1, round(d / aspect))
        for n_layers in range(max(1, depth - 1), depth + 2):
            shape = ModelArgs(d, n_layers, n_heads, n_heads, swiglu_hidden(d, multiple_of), BYTE_VOCAB, 1)
            # nearest in log N; off-ratio depths pay a little so ties go to the ladder's shape
            err = abs(math.log(F.nonembedding_params(shape) / target)) + 0.01 * abs(n_layers - depth)
            if err < best_err:
                best, best_err = Preset(d, n_layers, n_heads), err
    return best


def _interp_rung(rungs: List[Preset], d: int) -> tuple[float, float]:
    """(aspect ratio, head size) at width d, log-linearly between the ladder's rungs."""
    pts = [(math.log(p.d_model), p.d_model / p.n_layers, p.d_model / p.n_heads) for p in rungs]
    x = math.log(d)
    if x <= pts[0][0]:
        return pts[0][1], pts[0][2]
    if x >= pts[-1][0]:
        return pts[-1][1], pts[-1][2]
    for (x0, a0, h0), (x1, a1, h1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            t = (x - x0) / (x1 - x0) if x1 > x0 else 0.0
            return a0 + t * (a1 - a0), h0 + t * (h1 - h0)
    raise AssertionError("unreachable")


def model_args(cfg: TrainConfig, vocab_size: int) -> ModelArgs:
    """The concrete architecture of a config, given the data's vocabulary size."""
    a = cfg.arch
    if cfg.model == "auto":
        if cfg.model_params is None:
            raise ConfigError("model=auto needs a target size", field="model_params",
                              fix="set model_params, e.g. model=auto model_params=3e6, or name a preset")
        base = shape_for_params(cfg.model_params, a.ffn_multiple_of)
        name = f"auto({base.d_model}x{base.n_layers})"
    else:
        if cfg.model_params is not None:
            raise ConfigError("model_params is only read with model=auto", field="model_params",
                              fix=f"drop model_params, or set model=auto instead of model={cfg.model}")
        if cfg.model not in PRESETS:
            raise ConfigError(f"unknown preset {cfg.model!r}", field="model",
                              fix="use one of " + ", ".join(PRESETS) + ", or model=auto model_params=N")
        base, name = PRESETS[cfg.model], cfg.model
    # None keeps the preset's value; anything else, 0 included, is the user's and is checked below
    for fname in ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "vocab_size"):
        v = getattr(a, fname)
        if v is not None and v < 1:
            raise ConfigError(f"must be a positive integer, got {v}", field=f"arch.{fname}",
                              fix=f"use a value >= 1, or arch.{fname}=null for the preset's")
    d = a.d_model or base.d_model
    n_layers = a.n_layers or base.n_layers
    n_heads = a.n_heads or (base.n_heads if d == base.d_model else max(1, d // (base.d_model // base.n_heads)))
    n_kv = a.n_kv_heads or n_heads
    vocab = a.vocab_size or vocab_size
    if a.d_model or a.n_layers or a.n_heads or a.n_kv_heads or a.ffn_hidden:
        name = "custom"
    for fname, v in (("arch.d_model", d), ("arch.n_layers", n_layers), ("arch.n_heads", n_heads),
                     ("arch.n_kv_heads", n_kv), ("arch.ffn_multiple_of", a.ffn_multiple_of)):
        if v < 1:
            raise ConfigError(f"must be a positive integer, got {v}", field=fname, fix="use a value >= 1")
    if d % n_heads:
        raise ConfigError(f"d_model={d} is not divisible by n_heads={n_heads}", field="arch.n_heads",
                          fix="pick n_heads dividing d_model")
    if (d // n_heads) % 2:
        raise ConfigError(f"head size {d // n_heads} is odd; rotary embeddings rotate pairs",
                          field="arch.n_heads", fix="pick n_heads so that d_model / n_heads is even")
    if n_heads % n_kv:
        raise ConfigError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv}",
                          field="arch.n_kv_heads", fix="pick n_kv_heads dividing n_heads")
    if vocab < vocab_size:
        raise ConfigError(f"vocab_size={vocab} is smaller than the data's vocabulary ({vocab_size})",
                          field="arch.vocab_size", fix=f"set arch.vocab_size >= {vocab_size} or leave it unset")
    return ModelArgs(
        d_model=d, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
        ffn_hidden=a.ffn_hidden or swiglu_hidden(d, a.ffn_multiple_of), vocab_size=vocab,
        seq_len=cfg.seq_len, tie_embeddings=a.tie_embeddings, rope_theta=a.rope_theta,
        norm_eps=a.norm_eps, init_std=a.init_std, preset=name,
    )


"""A concrete model architecture, :class:`ModelArgs`: every number the model and the FLOP
count need.

It sits below both users: :mod:`scaling.flops` counts parameters and FLOPs of a
``ModelArgs``, and :mod:`scaling.config.ladder` builds one from a config (and needs the
FLOP count to size ``model=auto``), so neither has to import the other to name it.
``from scaling.config import ModelArgs`` gives the same class.

Imports nothing but the standard library.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelArgs:
    """A concrete architecture: every number the model and the FLOP count need."""

    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    vocab_size: int
    seq_len: int
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    preset: str = "custom"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

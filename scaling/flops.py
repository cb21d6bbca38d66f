"""Exact parameter and FLOP accounting for the model in ``scaling.model``.

Everything here is arithmetic on a :class:`scaling.shapes.ModelArgs`, with no torch, so
sweeps and the analysis side can plan budgets without building a model. The tests check
the parameter counts against ``sum(p.numel())`` of the built module.

Three FLOP counts, all per token:

* ``6N`` (Kaplan et al. 2020, Sec. 2.1): 6 x non-embedding parameters per training token.
* The detailed count of Hoffmann et al. 2022, Appendix F: embeddings, attention (QKV
  projections, K@Q logits, softmax, softmax@V reduction, output projection), dense blocks
  and final logits; backward = 2 x forward, so training = 3 x forward. App. F's dense block
  is a 4d MLP with two matrices; ours is SwiGLU with three (gate, up, down) of width
  ``ffn_hidden``, counted as 2 x 3 x d x ffn_hidden. Like App. F we count no
  element-wise work (norms, RoPE, the SiLU gate) and give attention no causal discount.
  With grouped-query attention the K and V projections are narrower and counted so.
* PaLM's model FLOPs (Chowdhery et al. 2022, App. B): 6N + 12 L H Q T, the basis of MFU.
  Here N counts every weight that takes part in a matmul: the non-embedding parameters
  plus the LM head (V x d, tied or not); the input embedding is a lookup. This is
  torchtitan's convention and keeps tied and untied models comparable.
"""
from __future__ import annotations

from typing import Optional

from scaling.shapes import ModelArgs


# --------------------------------------------------------------------------- parameters

def embedding_params(a: ModelArgs) -> int:
    """Token-embedding parameters (V x d), plus the LM head's when it is not tied."""
    return a.vocab_size * a.d_model * (1 if a.tie_embeddings else 2)


def layer_params(a: ModelArgs) -> int:
    """One transformer block: attention (QKV + output), SwiGLU MLP, two RMSNorm gains."""
    hs = a.head_dim
    attn = a.d_model * (a.n_heads + 2 * a.n_kv_heads) * hs + a.n_heads * hs * a.d_model
    mlp = 3 * a.d_model * a.ffn_hidden
    return attn + mlp + 2 * a.d_model


def nonembedding_params(a: ModelArgs) -> int:
    """Kaplan et al. 2020's N: all parameters except token embeddings and an untied LM head."""
    return a.n_layers * layer_params(a) + a.d_model  # + final norm


def count_params(a: ModelArgs) -> int:
    """Total parameters of the built module (tied weights counted once)."""
    return nonembedding_params(a) + embedding_params(a)


# --------------------------------------------------------------------------- FLOPs

def flops_6n_per_token(a: ModelArgs) -> float:
    """Training FLOPs per token as 6 x non-embedding parameters (Kaplan et al. 2020)."""
    return 6.0 * nonembedding_params(a)


def forward_flops_breakdown(a: ModelArgs, seq_len: Optional[int] = None) -> dict:
    """Forward FLOPs per token by part, following Hoffmann et al. 2022, Appendix F.

    App. F gives each term per sequence of length T; dividing by T gives these. Keys:
    embeddings, attention_qkv, attention_logits, attention_softmax, attention_reduction,
    attention_project, dense, logits (per layer terms already multiplied by n_layers),
    and total.
    """
    T = seq_len or a.seq_len
    d, V, L = a.d_model, a.vocab_size, a.n_layers
    hs, nh, nkv = a.head_dim, a.n_heads, a.n_kv_heads
    parts = {
        "embeddings": 2.0 * V * d,                           # App. F: 2 x T x V x d per sequence
        "attention_qkv": L * 2.0 * d * (nh + 2 * nkv) * hs,  # 2 x 3 x T x d x (hs x nh), GQA-aware
        "attention_logits": L * 2.0 * T * hs * nh,           # K @ Q: 2 x T x T x (hs x nh)
        "attention_softmax": L * 3.0 * nh * T,               # 3 x nh x T x T
        "attention_reduction": L * 2.0 * T * hs * nh,        # softmax @ V: 2 x T x T x (hs x nh)
        "attention_project": L * 2.0 * hs * nh * d,          # 2 x T x (hs x nh) x d
        "dense": L * 2.0 * 3 * d * a.ffn_hidden,             # SwiGLU: three d x ffn matrices
        "logits": 2.0 * d * V,                               # 2 x T x d x V
    }
    parts["total"] = sum(parts.values())
    return parts


def forward_flops_per_token(a: ModelArgs, seq_len: Optional[int] = None) -> float:
    return forward_flops_breakdown(a, seq_len)["total"]


def training_flops_per_token(a: ModelArgs, seq_len: Optional[int] = None) -> float:
    """Detailed training FLOPs per token: forward + backward (= 2 x forward), App. F."""
    return 3.0 * forward_flops_per_token(a, seq_len)


def palm_attention_flops_per_token(a: ModelArgs, seq_len: Optional[int] = None) -> float:
    """The attention term of PaLM's MFU formula, 12 L H Q T (Chowdhery et al. 2022, App. B)."""
    T = seq_len or a.seq_len
    return 12.0 * a.n_layers * a.n_heads * a.head_dim * T


def palm_flops_per_token(a: ModelArgs, seq_len: Optional[int] = None) -> float:
    """PaLM model FLOPs per training token: 6N + 12 L H Q T, N = matmul weights (see module doc)."""
    n_matmul = nonembedding_params(a) + a.vocab_size * a.d_model
    return 6.0 * n_matmul + palm_attention_flops_per_token(a, seq_len)


# --------------------------------------------------------------------------- device peaks

#: Dense bf16 tensor-core peak FLOP/s by device-name fragment, most specific first.
#: Vendor datasheets; sparsity figures halved. Looked up as torchtitan's get_peak_flops does.
PEAK_BF16_FLOPS = (
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),       # SXM
    ("H200", 989e12),
    ("H800", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("MI300X", 1307e12),
    ("MI250X", 383e12),
)


def peak_flops_for(device_name: str, precision: str) -> Optional[float]:
    """The device's dense peak FLOP/s for ``precision``, or None when unknown.

    Only bf16 peaks are tabled: fp32 training and CPUs have no meaningful MFU unless the
    user passes ``peak_flops`` explicitly.
    """
    if precision != "bf16" or not device_name:
        return None
    for frag, peak in PEAK_BF16_FLOPS:
        if frag.lower() in device_name.lower():
            return peak
    return None

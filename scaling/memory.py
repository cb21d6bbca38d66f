"""Peak memory per GPU of a training run, by counting what each op keeps, and the largest
micro-batch that fits a device.

The model is the one in :mod:`scaling.model` trained by :mod:`scaling.train.trainer`: float32
weights, float32 gradients, AdamW's two float32 moments (Loshchilov & Hutter 2019),
bf16 autocast or float32 activations, one of the kernel sets of :mod:`scaling.kernels`.
Per GPU, with P parameters and M = micro_batch x seq_len tokens:

    static       16 P bytes (weights, gradients, two moments; the usual mixed-precision
                 count of Rajbhandari et al. 2020, "ZeRO", Sec. 3.1, with float32 master
                 weights kept as the parameters themselves), plus 4 P for DDP's gradient
                 buckets when there is more than one process
    saved        what autograd keeps from the forward pass for the backward pass:
                 per layer and token a fixed number of bytes that depends on the kernels
                 and the activation dtype (:func:`saved_bytes_per_token`), plus the
                 final norm and the loss; under autocast also the bf16 copies of the
                 weight matrices that the linear layers keep
    transient    the largest short-lived buffer on top: the logits of the eager loss (or
                 the fused loss's chunk and float32 weight-gradient accumulator), or the
                 gradients of one layer in the backward pass (with activation
                 checkpointing, that layer's recomputed activations too)

The per-layer counts (:func:`saved_bytes_per_token`) are those of the ops as written
(tested on CPU against the tensors autograd really saves, within 15%). Attention is
assumed to run through a fused kernel that keeps the log-sum-exp and not the T x T
matrix, which is what ``F.scaled_dot_product_attention`` does on CUDA (flash or
memory-efficient) and on CPU. Activation checkpointing means one
``torch.utils.checkpoint`` per block: the block's input is kept, the rest recomputed in
backward (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").

The allocator's fragmentation and the CUDA context are not modelled; :func:`pick_micro_batch`
leaves a margin for them. This module imports neither torch nor numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from analysis.common.errors import ConfigError

from scaling import flops as F
# the modules, not the package: scaling.config's resolve() imports this module for micro_batch=auto
from scaling.config.ladder import BYTE_VOCAB, model_args
from scaling.config.schema import Tokenizer, TrainConfig
from scaling.shapes import ModelArgs

#: Bytes outside the allocator's count on a CUDA device: the context, cuBLAS and
#: cuDNN workspaces, NCCL buffers. Taken off the device before the margin.
DEVICE_RESERVE_BYTES = 2 << 30
#: Rows of the fused cross-entropy's logits chunk come from this budget
#: (``scaling.kernels.cross_entropy.LOGITS_CHUNK_BYTES``, repeated here to stay torch-free).
LOGITS_CHUNK_BYTES = 256 << 20
RESIDUAL_BYTES = 4  # the residual stream stays float32 under autocast
INDEX_BYTES = 8     # token ids and targets, int64


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU for one micro-batch, by part; ``peak`` is what must fit."""

    micro_batch: int
    seq_len: int
    kernels: str
    precision: str
    checkpointing: bool
    params: int
    grads: int
    optimizer: int
    ddp_buckets: int
    saved_layers: int          # all blocks' activations kept for backward
    saved_head: int            # final norm, loss, token ids
    autocast_weights: int      # bf16 copies of weight matrices kept by the linear layers
    transient: int             # the largest short-lived buffer on top of the rest
    parts: dict = field(default_factory=dict, compare=False)

    @property
    def static(self) -> int:
        return self.params + self.grads + self.optimizer + self.ddp_buckets

    @property
    def saved(self) -> int:
        """Bytes autograd holds for backward (what the CPU test measures)."""
        return self.saved_layers + self.saved_head + self.autocast_weights

    @property
    def peak(self) -> int:
        return self.static + self.saved + self.transient


def _elem(precision: str) -> int:
    return 2 if precision == "bf16" else 4


def saved_bytes_per_token(a: ModelArgs, kernels: str, precision: str) -> dict:
    """Bytes one block keeps for backward per token, by op. ``kernels`` is ``eager``
    (also ``compile``: counted as eager, an upper bound for what Inductor keeps) or
    ``triton``; ``precision`` is ``bf16`` (autocast) or ``fp32``."""
    e = _elem(precision)
    Cm, H, hs = a.d_model, a.ffn_hidden, a.head_dim
    nh, nkv = a.n_heads, a.n_kv_heads
    qkv = (nh + 2 * nkv) * hs
    attn = {
        # the fused kernel's q, k, v and output, and its float32 log-sum-exp
        "sdpa": (nh + 2 * nkv) * hs * e + nh * hs * e + 4 * nh,
        # the output transposed back to (B, T, nh hs) is a copy, the input of the projection
        "proj_in": nh * hs * e,
    }
    if kernels == "triton":
        # rstd per row; the output (in the activation dtype) is the next linear's input
        norm = RESIDUAL_BYTES * Cm + 4 + Cm * e
        # rope_qkv's outputs are the sdpa inputs already counted; the projection itself is not kept
        rope = 0
        # the (2H) projection, and the output that the down projection keeps
        mlp = 2 * H * e + H * e
    else:
        # x, x * rstd (float32), rstd; the next linear keeps the output (cast under autocast)
        norm = 2 * RESIDUAL_BYTES * Cm + 4 + Cm * e
        # sdpa keeps v, a view of the whole projection, so the projection stays; the
        # rotated q and k are new tensors (counted in sdpa)
        rope = qkv * e
        # the (2H) projection (views of it are kept), silu(gate), and the product
        mlp = 2 * H * e + H * e + H * e
    return {"attn_norm": norm, "rope": rope, **attn, "mlp_norm": norm, "mlp": mlp}


def _head_bytes_per_token(a: ModelArgs, kernels: str, precision: str) -> int:
    """Final norm, loss and token ids, per token, kept for backward."""
    e = _elem(precision)
    if kernels == "triton":
        # the norm keeps its input and rstd; the fused loss keeps its gradient for the
        # hidden states (and, not per token, its weight gradient); the embedding the ids
        return RESIDUAL_BYTES * a.d_model + 4 + a.d_model * e + INDEX_BYTES
    # eager: the norm as in a block, the head's input, log_softmax's float32 output, and
    # the ids of the embedding and of the loss's targets
    return 2 * RESIDUAL_BYTES * a.d_model + 4 + a.d_model * e + 4 * a.vocab_size + 2 * INDEX_BYTES


def _matrix_params(a: ModelArgs) -> int:
    """Weights the blocks' linear layers cast under autocast."""
    per_layer = a.d_model * (a.n_heads + 2 * a.n_kv_heads) * a.head_dim + a.n_heads * a.head_dim * a.d_model \
        + 3 * a.d_model * a.ffn_hidden
    return a.n_layers * per_layer


def _resolve_choice(kernels: str, precision: str, device_type: str) -> tuple[str, str]:
    if kernels not in ("eager", "compile", "triton", "auto"):
        raise ConfigError(f"unknown kernels {kernels!r}", field="kernels", fix="use eager, compile, triton or auto")
    if kernels == "auto":
        kernels = "triton" if device_type == "cuda" else "eager"
    if precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"unknown precision {precision!r}", field="precision", fix="use auto, bf16 or fp32")
    if precision == "auto":
        precision = "bf16" if device_type == "cuda" else "fp32"
    return ("triton" if kernels == "triton" else "eager"), precision


def estimate_model_memory(a: ModelArgs, micro_batch: int, *, kernels: str = "triton", precision: str = "bf16",
                          checkpointing: bool = False, world_size: int = 1,
                          device_type: str = "cuda") -> MemoryEstimate:
    """Peak bytes per GPU for model ``a`` trained on micro-batches of ``micro_batch``
    sequences of ``a.seq_len`` tokens."""
    if micro_batch < 1:
        raise ConfigError(f"micro_batch must be at least 1, got {micro_batch}", field="micro_batch",
                          fix="use a positive number of sequences")
    kern, prec = _resolve_choice(kernels, precision, device_type)
    e = _elem(prec)
    tokens = micro_batch * a.seq_len
    P = F.count_params(a)
    per_layer = saved_bytes_per_token(a, kern, prec)
    layer_tok = sum(per_layer.values())
    layer = layer_tok * tokens
    head = _head_bytes_per_token(a, kern, prec) * tokens
    V, Cm = a.vocab_size, a.d_model
    if checkpointing:
        # each block keeps only its input (the float32 residual stream)
        saved_layers = a.n_layers * RESIDUAL_BYTES * Cm * tokens
    else:
        saved_layers = a.n_layers * layer
    bf16 = prec == "bf16"
    # the bf16 weight copies the blocks' linear layers keep (recomputed per block with
    # checkpointing); the eager head's matmul keeps one of the head weight too
    autocast_w = (2 * _matrix_params(a) if bf16 and not checkpointing else 0) \
        + (2 * V * Cm if bf16 and kern == "eager" else 0)
    if kern == "triton":
        from math import ceil

        head += e * V * Cm  # the fused loss's weight gradient, computed in the forward pass
        vpad = 64 * ceil(V / 64)
        rows = max(1, min(tokens, LOGITS_CHUNK_BYTES // (vpad * e)))
        if rows >= 64:
            rows -= rows % 64
        # the chunk's logits; under bf16 the head weight's bf16 copy and the float32
        # accumulator of its gradient (in float32 the accumulator is the kept gradient)
        loss_transient = rows * vpad * e + (2 * V * Cm + 4 * V * Cm if bf16 else 0)
    else:
        # float32 logits (and their bf16 original) beside log_softmax's kept output, then
        # the float32 gradient of the logits in backward
        loss_transient = tokens * V * (4 + (2 if bf16 else 0) + 4)
    # backward of one block: its activation gradients are about its activations' size;
    # with checkpointing the block's activations (and bf16 weight copies) are recomputed first
    recomputed = (layer + (2 * _matrix_params(a) // max(1, a.n_layers) if bf16 else 0)) if checkpointing else 0
    layer_transient = layer + recomputed
    transient = max(loss_transient, layer_transient)
    ddp = 4 * P if world_size > 1 else 0
    parts = {"per_layer_per_token": per_layer, "loss_transient": loss_transient,
             "layer_transient": layer_transient, "recomputed": recomputed}
    return MemoryEstimate(micro_batch=micro_batch, seq_len=a.seq_len, kernels=kern, precision=prec,
                          checkpointing=checkpointing, params=4 * P, grads=4 * P, optimizer=8 * P,
                          ddp_buckets=ddp, saved_layers=saved_layers, saved_head=head,
                          autocast_weights=autocast_w, transient=transient, parts=parts)


def _vocab(cfg: TrainConfig, vocab_size: Optional[int]) -> int:
    if vocab_size:
        return int(vocab_size)
    if cfg.arch.vocab_size:
        return int(cfg.arch.vocab_size)
    if cfg.data.vocab_size:
        return int(cfg.data.vocab_size)
    if cfg.data.tokenizer == Tokenizer.bpe:
        raise ConfigError("the BPE vocabulary size is needed to estimate memory", field="data.vocab_size",
                          fix="set data.vocab_size (or arch.vocab_size)")
    return BYTE_VOCAB


def estimate_memory(cfg: TrainConfig, *, vocab_size: Optional[int] = None, world_size: int = 1,
                    micro_batch: Optional[int] = None, checkpointing: Optional[bool] = None,
                    device_type: str = "cuda") -> MemoryEstimate:
    """Peak bytes per GPU of a training config on ``world_size`` processes.

    ``micro_batch`` defaults to the config's (itself defaulting to each process's whole
    share of the batch); ``vocab_size`` to the config's vocabulary; ``checkpointing`` to
    its ``activation_checkpointing``; kernels and precision ``auto`` resolve as the
    trainer does on ``device_type``.
    """
    if checkpointing is None:
        checkpointing = cfg.activation_checkpointing
    a = model_args(cfg, _vocab(cfg, vocab_size))
    per_rank = _per_rank(cfg, world_size)
    mb = micro_batch or (cfg.micro_batch if isinstance(cfg.micro_batch, int) else None) or per_rank
    return estimate_model_memory(a, mb, kernels=cfg.kernels, precision=cfg.precision, checkpointing=checkpointing,
                                 world_size=world_size, device_type=device_type)


def _per_rank(cfg: TrainConfig, world_size: int) -> int:
    seqs = cfg.batch_tokens // cfg.seq_len
    if cfg.batch_tokens % cfg.seq_len or seqs % world_size:
        raise ConfigError(f"batch_tokens={cfg.batch_tokens} does not split into sequences of {cfg.seq_len} "
                          f"over {world_size} processes", field="batch_tokens",
                          fix=f"use a multiple of {cfg.seq_len * world_size}")
    return seqs // world_size


@dataclass(frozen=True)
class MicroBatchChoice:
    micro_batch: int
    grad_accum: int
    checkpointing: bool
    estimate: MemoryEstimate
    usable_bytes: int


def pick_micro_batch(cfg: TrainConfig, device_bytes: int, margin: float = 0.1, *,
                     vocab_size: Optional[int] = None, world_size: int = 1,
                     device_type: str = "cuda", checkpointing: Optional[bool] = None) -> MicroBatchChoice:
    """The largest micro-batch (a divisor of each process's share of the batch) whose
    estimated peak fits ``device_bytes`` less :data:`DEVICE_RESERVE_BYTES` and a
    ``margin`` fraction. With ``checkpointing=None``: without activation checkpointing
    when some micro-batch fits that way (recomputation costs about a third more
    compute), else with it; ``True`` or ``False`` fixes it. A :class:`ConfigError` when
    not even one sequence fits."""
    if not 0 <= margin < 1:
        raise ConfigError(f"margin must lie in [0, 1), got {margin}", field="margin", fix="e.g. margin=0.1")
    usable = int((device_bytes - DEVICE_RESERVE_BYTES) * (1 - margin))
    per_rank = _per_rank(cfg, world_size)
    divisors = [d for d in range(per_rank, 0, -1) if per_rank % d == 0]
    for ckpt in ((False, True) if checkpointing is None else (checkpointing,)):
        for mb in divisors:
            est = estimate_memory(cfg, vocab_size=vocab_size, world_size=world_size, micro_batch=mb,
                                  checkpointing=ckpt, device_type=device_type)
            if est.peak <= usable:
                return MicroBatchChoice(mb, per_rank // mb, ckpt, est, usable)
    ckpt = checkpointing is not False
    est = estimate_memory(cfg, vocab_size=vocab_size, world_size=world_size, micro_batch=1, checkpointing=ckpt,
                          device_type=device_type)
    raise ConfigError(f"one sequence of {cfg.seq_len} tokens needs about {est.peak / 2**30:.1f} GiB per device "
                      f"{'with' if ckpt else 'without'} activation checkpointing, more than the "
                      f"{usable / 2**30:.1f} GiB usable",
                      field="micro_batch", fix="use a device with more memory, more processes for the "
                                               "optimizer state, or a shorter seq_len")


def format_estimate(est: MemoryEstimate) -> str:
    """One line: the peak and its main parts, in GiB."""
    g = 2 ** 30
    return (f"peak {est.peak / g:.1f} GiB = static {est.static / g:.1f} + saved {est.saved / g:.1f} "
            f"+ transient {est.transient / g:.1f} (micro_batch {est.micro_batch} x {est.seq_len}, "
            f"kernels={est.kernels}, {est.precision}{', checkpointing' if est.checkpointing else ''})")

"""Fused rotary position embedding (Su et al. 2021, "RoFormer") for q and k in one launch.

Half-split ("rotate_half") layout: with x1 = x[..., :hs/2], x2 = x[..., hs/2:] and
cos/sin (T, hs/2),
    x1' = x1 cos - x2 sin,    x2' = x2 cos + x1 sin.
The map is a rotation, so its Jacobian transpose is the inverse rotation (sin -> -sin):
backward runs the same kernel with the sign of sin flipped. Nothing but cos/sin is
saved for backward.

In-place safety: outputs are fresh tensors, never q or k themselves, so autograd and
any other user of q/k see the unrotated values.

Grid: (B, T-blocks, heads). Axis 2 picks a head of q, of k past nh, or of v past
nh + nkv, so all of them share one launch; each program rotates (or, for v, copies) a
(BLOCK_T x hs) tile of one head. Two entry points:

``apply_rope(q, k, cos, sin)``
    q and k as separate tensors; outputs with q's and k's strides.
``rope_qkv(qkv, cos, sin, nh, nkv)``
    the fused projection (B, T, nh + 2 nkv, hs) in, contiguous q (B, nh, T, hs) and
    k, v (B, nkv, T, hs) out. Backward writes the gradient of the whole fused projection
    in one pass (rotating dq and dk back, copying dv), so autograd has no three pieces
    to concatenate; forward pays one copy of v for it, which is less than the copy of
    dq and dk it saves.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _utils as U
from .reference import apply_rope as apply_rope_reference  # noqa: F401  (the op's plain-PyTorch twin)
from .reference import rope_qkv as rope_qkv_reference  # noqa: F401


@triton.jit
def _rotate_tile(X, Y, b, h, t, d, mask, c, s,
                 sxb, sxh, sxt, syb, syh, syt, HALF: tl.constexpr):
    x_base = X + b.to(tl.int64) * sxb + h.to(tl.int64) * sxh + t * sxt + d
    y_base = Y + b.to(tl.int64) * syb + h.to(tl.int64) * syh + t * syt + d
    x1 = tl.load(x_base, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_base + HALF, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_base, (x1 * c - x2 * s).to(Y.dtype.element_ty), mask=mask)
    tl.store(y_base + HALF, (x2 * c + x1 * s).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _copy_tile(X, Y, b, h, t, d, mask, sxb, sxh, sxt, syb, syh, syt, HALF: tl.constexpr):
    x_base = X + b.to(tl.int64) * sxb + h.to(tl.int64) * sxh + t * sxt + d
    y_base = Y + b.to(tl.int64) * syb + h.to(tl.int64) * syh + t * syt + d
    tl.store(y_base, tl.load(x_base, mask=mask, other=0.0).to(Y.dtype.element_ty), mask=mask)
    tl.store(y_base + HALF, tl.load(x_base + HALF, mask=mask, other=0.0).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rope_kernel(Q, K, V, QO, KO, VO, COS, SIN, seq_len, n_q_heads, n_k_heads,
                 sqb, sqh, sqt, skb, skh, skt, svb, svh, svt,
                 sqob, sqoh, sqot, skob, skoh, skot, svob, svoh, svot, s_cos, s_sin,
                 SIGN: tl.constexpr, HALF: tl.constexpr,
                 BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    head = tl.program_id(2)
    d = tl.arange(0, BLOCK_D)
    mask = (t < seq_len)[:, None] & (d < HALF)[None, :]
    t64 = t.to(tl.int64)[:, None]
    if head < n_q_heads + n_k_heads:
        c = tl.load(COS + t64 * s_cos + d[None, :], mask=mask, other=0.0).to(tl.float32)
        s = tl.load(SIN + t64 * s_sin + d[None, :], mask=mask, other=0.0).to(tl.float32) * SIGN
        if head < n_q_heads:
            _rotate_tile(Q, QO, b, head, t64, d[None, :], mask, c, s, sqb, sqh, sqt, sqob, sqoh, sqot, HALF)
        else:
            _rotate_tile(K, KO, b, head - n_q_heads, t64, d[None, :], mask, c, s,
                         skb, skh, skt, skob, skoh, skot, HALF)
    else:  # a value head: moved, not rotated
        _copy_tile(V, VO, b, head - n_q_heads - n_k_heads, t64, d[None, :], mask,
                   svb, svh, svt, svob, svoh, svot, HALF)


def rope_tile(T: int, half: int) -> tuple[int, int]:
    """(BLOCK_T, BLOCK_D): positions per program and the padded half head size. Each
    program moves two (BLOCK_T x BLOCK_D) halves in and out, tile_elems() in all."""
    block_d = triton.next_power_of_2(half)
    block_t = min(triton.next_power_of_2(max(T, 1)), max(1, (U.tile_elems() // 2) // block_d))
    return block_t, block_d


def _strides(x: torch.Tensor):
    return x.stride(0), x.stride(1), x.stride(2)


def _launch(q, k, v, qo, ko, vo, cos, sin, sign: int) -> None:
    """Rotate q into qo and k into ko, copy v into vo (v may be None); all (B, heads, T, hs)."""
    B, nh, T, hs = q.shape
    nkv = k.shape[1]
    nv = 0 if v is None else v.shape[1]
    if v is None:  # no value heads in the grid: the pointers are never read
        v, vo = q, qo
    half = hs // 2
    cos, sin = U.last_dim_contiguous(cos), U.last_dim_contiguous(sin)
    block_t, block_d = rope_tile(T, half)
    grid = (B, triton.cdiv(T, block_t), nh + nkv + nv)
    if B and T and hs and grid[2]:
        _rope_kernel[grid](q, k, v, qo, ko, vo, cos, sin, T, nh, nkv,
                           *_strides(q), *_strides(k), *_strides(v),
                           *_strides(qo), *_strides(ko), *_strides(vo),
                           cos.stride(0), sin.stride(0),
                           SIGN=sign, HALF=half, BLOCK_T=block_t, BLOCK_D=block_d,
                           num_warps=U.num_warps_for(block_t * block_d))


# Registered with torch.library so that torch.compile keeps each op in its graph as one
# opaque node (with these fake shapes and autograd formulas) instead of breaking the
# graph at the Triton launch.
@torch.library.custom_op("scaling::rope", mutates_args=())
def _rope_op(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
             sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    q, k = U.last_dim_contiguous(q), U.last_dim_contiguous(k)
    qo, ko = U.new_empty_like(q), U.new_empty_like(k)
    _launch(q, k, None, qo, ko, None, cos, sin, sign)
    return qo, ko


@_rope_op.register_fake
def _(q, k, cos, sin, sign):
    return torch.empty_like(U.last_dim_contiguous(q)), torch.empty_like(U.last_dim_contiguous(k))


def _rope_setup(ctx, inputs, output):
    _q, _k, cos, sin, sign = inputs
    ctx.save_for_backward(cos, sin)
    ctx.sign = sign


def _rope_bwd(ctx, dq, dk):
    cos, sin = ctx.saved_tensors
    # materialize_grads is on, so an unused output arrives as zeros, never None.
    dq, dk = _rope_op(dq, dk, cos, sin, -ctx.sign)
    return dq, dk, None, None, None


_rope_op.register_autograd(_rope_bwd, setup_context=_rope_setup)


def _split_heads(qkv: torch.Tensor, nh: int, nkv: int):
    """q, k, v views (B, heads, T, hs) of a (B, T, nh + 2 nkv, hs) tensor."""
    q, k, v = qkv.split([nh, nkv, nkv], dim=2)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


@torch.library.custom_op("scaling::rope_qkv", mutates_args=())
def _rope_qkv_op(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int,
                 n_kv_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B, T, _, hs = qkv.shape
    q, k, v = _split_heads(U.last_dim_contiguous(qkv), n_heads, n_kv_heads)
    qo = U.new_empty((B, n_heads, T, hs), dtype=qkv.dtype, device=qkv.device)
    ko = U.new_empty((B, n_kv_heads, T, hs), dtype=qkv.dtype, device=qkv.device)
    vo = U.new_empty((B, n_kv_heads, T, hs), dtype=qkv.dtype, device=qkv.device)
    _launch(q, k, v, qo, ko, vo, cos, sin, 1)
    return qo, ko, vo


@_rope_qkv_op.register_fake
def _(qkv, cos, sin, n_heads, n_kv_heads):
    B, T, _, hs = qkv.shape
    return (qkv.new_empty((B, n_heads, T, hs)), qkv.new_empty((B, n_kv_heads, T, hs)),
            qkv.new_empty((B, n_kv_heads, T, hs)))


@torch.library.custom_op("scaling::rope_qkv_backward", mutates_args=())
def _rope_qkv_backward_op(dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor, cos: torch.Tensor,
                          sin: torch.Tensor) -> torch.Tensor:
    B, nh, T, hs = dq.shape
    nkv = dk.shape[1]
    dq, dk, dv = (U.last_dim_contiguous(t) for t in (dq, dk, dv))
    dqkv = U.new_empty((B, T, nh + 2 * nkv, hs), dtype=dq.dtype, device=dq.device)
    _launch(dq, dk, dv, *_split_heads(dqkv, nh, nkv), cos, sin, -1)
    return dqkv


@_rope_qkv_backward_op.register_fake
def _(dq, dk, dv, cos, sin):
    B, nh, T, hs = dq.shape
    return dq.new_empty((B, T, nh + 2 * dk.shape[1], hs))


def _rope_qkv_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1], inputs[2])


def _rope_qkv_bwd(ctx, dq, dk, dv):
    cos, sin = ctx.saved_tensors
    return _rope_qkv_backward_op(dq, dk, dv, cos, sin), None, None, None, None


_rope_qkv_op.register_autograd(_rope_qkv_bwd, setup_context=_rope_qkv_setup)


def _check(q, k, cos, sin):
    U.require(q.dim() == 4 and k.dim() == 4,
              f"q and k must be 4-D (B, heads, T, hs), got shapes {tuple(q.shape)} and {tuple(k.shape)}",
              field="apply_rope", fix="pass q (B, nh, T, hs) and k (B, nkv, T, hs)")
    B, _, T, hs = q.shape
    U.require(k.shape[0] == B and k.shape[2] == T and k.shape[3] == hs,
              f"k has shape {tuple(k.shape)}, which does not match q {tuple(q.shape)} in B, T or hs",
              field="apply_rope", fix="give k the same batch, sequence and head size as q")
    U.require(hs % 2 == 0, f"head size {hs} is odd", field="apply_rope",
              fix="use an even head size; rotary embedding rotates pairs of features")
    U.require(tuple(cos.shape) == (T, hs // 2) and tuple(sin.shape) == (T, hs // 2),
              f"cos/sin have shapes {tuple(cos.shape)}/{tuple(sin.shape)}, expected {(T, hs // 2)}",
              field="apply_rope", fix="slice the cos/sin tables to the first T positions, width hs // 2")
    U.require(q.dtype == k.dtype and q.is_floating_point(),
              f"q and k need one floating-point dtype, got {q.dtype} and {k.dtype}",
              field="apply_rope", fix="cast q and k to the same float dtype")
    U.check_launchable(q, k, cos, sin, op="apply_rope")


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotate q (B, nh, T, hs) and k (B, nkv, T, hs) by cos/sin (T, hs // 2) in one launch.

    Same function as :func:`scaling.kernels.reference.apply_rope` (computed in float32,
    stored in q's dtype); returns new tensors with q's and k's strides.
    """
    _check(q, k, cos, sin)
    return _rope_op(q, k, cos, sin, 1)


def rope_qkv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int, n_kv_heads: int):
    """q (B, nh, T, hs), k and v (B, nkv, T, hs) from a fused projection qkv
    (B, T, nh + 2 nkv, hs), q and k rotated by cos/sin (T, hs // 2); one launch each way.

    Same function as :func:`scaling.kernels.reference.rope_qkv`; the outputs are
    contiguous, in qkv's dtype, computed in float32.
    """
    U.require(qkv.dim() == 4 and qkv.shape[2] == n_heads + 2 * n_kv_heads,
              f"qkv has shape {tuple(qkv.shape)}, expected (B, T, {n_heads} + 2 * {n_kv_heads}, hs)",
              field="apply_rope", fix="view the fused projection as (B, T, nh + 2 nkv, hs)")
    q, k, _ = _split_heads(qkv, n_heads, n_kv_heads)
    _check(q, k, cos, sin)
    return _rope_qkv_op(qkv, cos, sin, int(n_heads), int(n_kv_heads))

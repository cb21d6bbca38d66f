"""Fused SwiGLU gating (Shazeer 2020, "GLU Variants Improve Transformer").

Forward: out = silu(gate) * up, silu(a) = a * sigmoid(a), computed in float32 and
stored in the inputs' dtype. Nothing but the inputs is saved.

Backward recomputes sigmoid(gate) instead of storing silu (one read of gate costs less
than one write plus one read of an extra activation):
    d_up   = dy * silu(gate)
    d_gate = dy * up * s * (1 + gate * (1 - s)),  s = sigmoid(gate)
One pass each way: forward reads 2 tensors and writes 1, backward reads 3 and writes 2,
which is the minimum traffic for this function.

Inputs may be row-strided views (e.g. the two halves of a fused up-projection from
``chunk(2, -1)``): rows are addressed by stride, so no copy is made. ``swiglu_packed``
takes the fused (..., 2H) projection itself and writes its gradient into one (..., 2H)
buffer, so autograd has no two halves to concatenate.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _utils as U
from .reference import swiglu as swiglu_reference  # noqa: F401  (the op's plain-PyTorch twin)
from .reference import swiglu_packed as swiglu_packed_reference  # noqa: F401


@triton.jit
def _tile(n_rows, n_cols, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rows < n_rows)[:, None] & (cols < n_cols)[None, :]
    return rows.to(tl.int64)[:, None], cols[None, :], mask


@triton.jit
def _swiglu_fwd_kernel(G, U_, Y, n_rows, n_cols, stride_g, stride_u, stride_y,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    g = tl.load(G + rows * stride_g + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U_ + rows * stride_u + cols, mask=mask, other=0.0).to(tl.float32)
    y = g * tl.sigmoid(g) * u
    tl.store(Y + rows * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd_kernel(DY, G, U_, DG, DU, n_rows, n_cols,
                       stride_dy, stride_g, stride_u, stride_dg, stride_du,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    dy = tl.load(DY + rows * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + rows * stride_g + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U_ + rows * stride_u + cols, mask=mask, other=0.0).to(tl.float32)
    s = tl.sigmoid(g)
    silu = g * s
    du = dy * silu
    dg = dy * u * s * (1.0 + g * (1.0 - s))
    tl.store(DG + rows * stride_dg + cols, dg.to(DG.dtype.element_ty), mask=mask)
    tl.store(DU + rows * stride_du + cols, du.to(DU.dtype.element_ty), mask=mask)


def grid_and_tile(n_rows: int, n_cols: int):
    """Grid, BLOCK_R, BLOCK_C and num_warps for an (n_rows x n_cols) element-wise launch."""
    # Columns in blocks of up to 1024 (or the whole row when the interpreter runs it),
    # rows stacked until the tile holds about tile_elems() elements.
    cap = U.tile_elems() if U.INTERPRET else 1024
    block_c = min(triton.next_power_of_2(max(n_cols, 1)), cap)
    block_r = min(max(1, U.tile_elems() // block_c), triton.next_power_of_2(max(n_rows, 1)))
    grid = (triton.cdiv(n_rows, block_r), triton.cdiv(n_cols, block_c))
    return grid, block_r, block_c, U.num_warps_for(block_r * block_c)


def _forward(g2: torch.Tensor, u2: torch.Tensor, shape) -> torch.Tensor:
    n_rows, n_cols = g2.shape
    y = U.new_empty(shape, dtype=g2.dtype, device=g2.device)
    grid, br, bc, nw = grid_and_tile(n_rows, n_cols)
    if n_rows and n_cols:
        y2 = y.view(n_rows, n_cols)
        _swiglu_fwd_kernel[grid](g2, u2, y2, n_rows, n_cols, g2.stride(0), u2.stride(0), y2.stride(0),
                                 BLOCK_R=br, BLOCK_C=bc, num_warps=nw)
    return y


def _backward_into(dy: torch.Tensor, g2, u2, dg2, du2) -> None:
    n_rows, n_cols = g2.shape
    dy2 = U.as_rows(dy)
    grid, br, bc, nw = grid_and_tile(n_rows, n_cols)
    if n_rows and n_cols:
        _swiglu_bwd_kernel[grid](dy2, g2, u2, dg2, du2, n_rows, n_cols,
                                 dy2.stride(0), g2.stride(0), u2.stride(0), dg2.stride(0), du2.stride(0),
                                 BLOCK_R=br, BLOCK_C=bc, num_warps=nw)


# Registered with torch.library so that torch.compile keeps each op in its graph as one
# opaque node (with these fake shapes and autograd formulas) rather than breaking the
# graph at the Triton launch. Two forms: gate and up as separate tensors, and "packed",
# the (..., 2H) output of the fused gate/up projection, whose gradient the backward
# kernel writes straight into one (..., 2H) buffer (no concatenation by autograd).
@torch.library.custom_op("scaling::swiglu", mutates_args=())
def _swiglu_op(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return _forward(U.as_rows(gate), U.as_rows(up), gate.shape)


@_swiglu_op.register_fake
def _(gate, up):
    return gate.new_empty(gate.shape)


@torch.library.custom_op("scaling::swiglu_backward", mutates_args=())
def _swiglu_backward_op(dy: torch.Tensor, gate: torch.Tensor,
                        up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    g2, u2 = U.as_rows(gate), U.as_rows(up)
    dg = U.new_empty(gate.shape, dtype=gate.dtype, device=gate.device)
    du = U.new_empty(up.shape, dtype=up.dtype, device=up.device)
    if dg.numel():
        _backward_into(dy, g2, u2, dg.view(g2.shape), du.view(u2.shape))
    return dg, du


@_swiglu_backward_op.register_fake
def _(dy, gate, up):
    return gate.new_empty(gate.shape), up.new_empty(up.shape)


def _swiglu_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _swiglu_bwd(ctx, dy):
    gate, up = ctx.saved_tensors
    return _swiglu_backward_op(dy, gate, up)


_swiglu_op.register_autograd(_swiglu_bwd, setup_context=_swiglu_setup)


def _halves(gate_up: torch.Tensor):
    gu2 = U.as_rows(gate_up)
    h = gu2.shape[1] // 2
    return gu2, gu2[:, :h], gu2[:, h:]


@torch.library.custom_op("scaling::swiglu_packed", mutates_args=())
def _swiglu_packed_op(gate_up: torch.Tensor) -> torch.Tensor:
    _, g2, u2 = _halves(gate_up)
    return _forward(g2, u2, (*gate_up.shape[:-1], gate_up.shape[-1] // 2))


@_swiglu_packed_op.register_fake
def _(gate_up):
    return gate_up.new_empty((*gate_up.shape[:-1], gate_up.shape[-1] // 2))


@torch.library.custom_op("scaling::swiglu_packed_backward", mutates_args=())
def _swiglu_packed_backward_op(dy: torch.Tensor, gate_up: torch.Tensor) -> torch.Tensor:
    gu2, g2, u2 = _halves(gate_up)
    dgu = U.new_empty(gate_up.shape, dtype=gate_up.dtype, device=gate_up.device)
    if dgu.numel():
        dgu2 = dgu.view(gu2.shape)
        h = g2.shape[1]
        _backward_into(dy, g2, u2, dgu2[:, :h], dgu2[:, h:])
    return dgu


@_swiglu_packed_backward_op.register_fake
def _(dy, gate_up):
    return gate_up.new_empty(gate_up.shape)


def _packed_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _packed_bwd(ctx, dy):
    (gate_up,) = ctx.saved_tensors
    return _swiglu_packed_backward_op(dy, gate_up)


_swiglu_packed_op.register_autograd(_packed_bwd, setup_context=_packed_setup)


def _check_dtype(t: torch.Tensor, other: torch.Tensor) -> None:
    U.require(t.dtype == other.dtype and t.is_floating_point(),
              f"swiglu needs floating-point tensors of one dtype, got {t.dtype} and {other.dtype}",
              field="swiglu", fix="cast gate and up to the same float dtype")


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for gate, up (..., H), one Triton kernel each way.

    Same function as :func:`scaling.kernels.reference.swiglu`; the output has the
    inputs' dtype and a fresh contiguous layout.
    """
    U.require(gate.shape == up.shape, f"gate has shape {tuple(gate.shape)} but up has {tuple(up.shape)}",
              field="swiglu", fix="pass gate and up of the same shape (..., H)")
    _check_dtype(gate, up)
    U.check_launchable(gate, up, op="swiglu")
    return _swiglu_op(gate, up)


def swiglu_packed(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up with gate, up = gate_up.chunk(2, -1), for gate_up (..., 2H).

    Same function as :func:`scaling.kernels.reference.swiglu_packed`. Backward writes the
    (..., 2H) gradient of gate_up in one pass.
    """
    U.require(gate_up.dim() >= 1 and gate_up.shape[-1] % 2 == 0,
              f"gate_up has shape {tuple(gate_up.shape)}; its last dimension must be even",
              field="swiglu", fix="pass the (..., 2H) output of the fused gate/up projection")
    _check_dtype(gate_up, gate_up)
    U.check_launchable(gate_up, op="swiglu")
    return _swiglu_packed_op(gate_up)

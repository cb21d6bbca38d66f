"""Fused RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization").

Forward, per row r of x (rows, C), in float32:
    rstd_r = 1 / sqrt(mean_j x_rj^2 + eps),   y_rj = x_rj * rstd_r * w_j.
Only ``rstd`` (4 bytes a row) is saved for backward besides x and w; x_hat = x * rstd
is recomputed. Under autocast y is written in the autocast dtype (bf16): the kernel
reads x in its own dtype, accumulates in float32 and stores y once in bf16.

Backward, with g = dy * w:
    dx_rj = rstd_r * (g_rj - x_hat_rj * mean_j(g_rj * x_hat_rj))
    dw_j  = sum_r dy_rj * x_hat_rj
The dw reduction runs over rows, which are spread over programs: each program of a
persistent grid (a few per SM) keeps its partial sum in registers across all the row
tiles it visits and writes one row of partials; a (programs x C) ``sum(0)`` finishes it.
No atomics, so the result is deterministic. The Triton layer-norm tutorial reduces dw
in two stages the same way.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _utils as U
from .reference import rms_norm as rms_norm_reference  # noqa: F401  (the op's plain-PyTorch twin)


@triton.jit
def _rms_norm_fwd_kernel(X, W, Y, RSTD, n_rows, n_cols, stride_x, stride_y, eps,
                         BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    rmask = rows < n_rows
    cmask = cols < n_cols
    mask = rmask[:, None] & cmask[None, :]
    rows64 = rows.to(tl.int64)[:, None]
    x = tl.load(X + rows64 * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    w = tl.load(W + cols, mask=cmask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / n_cols + eps)
    y = x * rstd[:, None] * w[None, :]
    tl.store(Y + rows64 * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows, rstd, mask=rmask)


@triton.jit
def _rms_norm_bwd_kernel(DY, X, W, RSTD, DX, DW_PART, n_rows, n_cols,
                         stride_dy, stride_x, stride_dx,
                         BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    cols = tl.arange(0, BLOCK_C)
    cmask = cols < n_cols
    w = tl.load(W + cols, mask=cmask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    n_tiles = tl.cdiv(n_rows, BLOCK_R)
    for tile in range(pid, n_tiles, n_prog):
        rows = tile * BLOCK_R + tl.arange(0, BLOCK_R)
        rmask = rows < n_rows
        mask = rmask[:, None] & cmask[None, :]
        rows64 = rows.to(tl.int64)[:, None]
        x = tl.load(X + rows64 * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + rows64 * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + rows, mask=rmask, other=0.0)
        x_hat = x * rstd[:, None]
        g = dy * w[None, :]
        c = tl.sum(g * x_hat, axis=1) / n_cols
        dx = (g - x_hat * c[:, None]) * rstd[:, None]
        tl.store(DX + rows64 * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        dw_acc += dy * x_hat  # masked rows load as zeros and add nothing
    tl.store(DW_PART + pid.to(tl.int64) * n_cols + cols, tl.sum(dw_acc, axis=0), mask=cmask)


def _check(x: torch.Tensor, weight: torch.Tensor) -> None:
    U.require(x.dim() >= 1 and weight.dim() == 1 and x.shape[-1] == weight.shape[0],
              f"x has shape {tuple(x.shape)} but weight has shape {tuple(weight.shape)}",
              field="rms_norm", fix="pass x (..., C) and weight (C,) with the same C")
    U.require(x.is_floating_point() and weight.is_floating_point(),
              f"rms_norm needs floating-point tensors, got {x.dtype} and {weight.dtype}",
              field="rms_norm", fix="cast x and weight to float32, bfloat16 or float16")
    U.check_launchable(x, weight, op="rms_norm")


def _rows(shape) -> int:
    n = 1
    for d in shape[:-1]:
        n *= d
    return n


# The op is registered with torch.library (forward, backward, fake shapes and the autograd
# formula) so that torch.compile keeps it whole in the graph as one opaque node instead of
# breaking the graph at the Triton launch.
@torch.library.custom_op("scaling::rms_norm", mutates_args=())
def _rms_norm_op(x: torch.Tensor, weight: torch.Tensor, eps: float,
                 out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(y in out_dtype with x's shape, float32 rstd per row)."""
    x2 = U.as_rows(x)
    n_rows, n_cols = x2.shape
    w = weight.contiguous()
    y = U.new_empty(x.shape, dtype=out_dtype, device=x.device)
    rstd = U.new_empty((n_rows,), dtype=torch.float32, device=x.device)
    block_r, block_c = U.row_tile(n_rows, n_cols)
    if n_rows:
        y2 = y.view(n_rows, n_cols)
        _rms_norm_fwd_kernel[(triton.cdiv(n_rows, block_r),)](
            x2, w, y2, rstd, n_rows, n_cols, x2.stride(0), y2.stride(0), float(eps),
            BLOCK_R=block_r, BLOCK_C=block_c, num_warps=U.num_warps_for(block_r * block_c))
    return y, rstd


@_rms_norm_op.register_fake
def _(x, weight, eps, out_dtype):
    return x.new_empty(x.shape, dtype=out_dtype), x.new_empty((_rows(x.shape),), dtype=torch.float32)


@torch.library.custom_op("scaling::rms_norm_backward", mutates_args=())
def _rms_norm_backward_op(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                          rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx in x's dtype and shape, dw in weight's dtype)."""
    x2 = U.as_rows(x)
    n_rows, n_cols = x2.shape
    w = weight.contiguous()
    dy2 = U.as_rows(dy)
    dx = U.new_empty(x.shape, dtype=x.dtype, device=x.device)
    block_r, block_c = U.row_tile(n_rows, n_cols)
    n_prog = U.persistent_programs(triton.cdiv(n_rows, block_r), x.device)
    dw_part = U.new_empty((n_prog, n_cols), dtype=torch.float32, device=x.device)
    if n_rows:
        dx2 = dx.view(n_rows, n_cols)
        _rms_norm_bwd_kernel[(n_prog,)](
            dy2, x2, w, rstd, dx2, dw_part, n_rows, n_cols,
            dy2.stride(0), x2.stride(0), dx2.stride(0),
            BLOCK_R=block_r, BLOCK_C=block_c, num_warps=U.num_warps_for(block_r * block_c))
        dw = dw_part.sum(0)
    else:
        dw = torch.zeros(n_cols, dtype=torch.float32, device=x.device)
    return dx, dw.to(weight.dtype)


@_rms_norm_backward_op.register_fake
def _(dy, x, weight, rstd):
    return x.new_empty(x.shape), weight.new_empty(weight.shape)


def _setup_context(ctx, inputs, output):
    x, weight, _eps, _dtype = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(x, weight, output[1])


def _backward(ctx, dy, _drstd):
    x, weight, rstd = ctx.saved_tensors
    dx, dw = _rms_norm_backward_op(dy, x, weight, rstd)
    return dx, dw, None, None


_rms_norm_op.register_autograd(_backward, setup_context=_setup_context)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm of x (..., C) scaled by weight (C,), as one Triton kernel each way.

    Same function as :func:`scaling.kernels.reference.rms_norm`: statistics in float32,
    weight's gradient in weight's dtype. The output has x's dtype, except under autocast,
    where it is written in the autocast dtype: the next op is a linear layer that autocast
    would cast to that dtype anyway, so writing it directly halves the bytes stored and
    drops the cast (the float32 residual stream itself stays float32).
    """
    _check(x, weight)
    dev = x.device.type
    out_dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    return _rms_norm_op(x, weight, float(eps), out_dtype)[0]

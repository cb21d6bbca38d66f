"""Launch utilities shared by the Triton kernels: output allocation, tile shapes, checks.

The same kernels run compiled on CUDA and, with ``TRITON_INTERPRET=1``, on the CPU
interpreter used in CI. Tile shapes differ between the two: on a GPU a tile is sized for
registers and occupancy; the interpreter pays a fixed cost per program instance
(about a millisecond), so there each program takes a much larger tile.
"""
from __future__ import annotations

import functools
import os

import torch
import triton

from analysis.common.errors import ConfigError, InputError

#: Read once, like ``triton.jit`` itself does when the kernels are decorated.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")

# Triton 3.9 fuses multiply-adds unless told otherwise and warns on every first launch that
# 3.10 will not. The kernels were checked against float64 with fusion on: keep it, and say
# so, which also silences the warning (a user's own setting wins).
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

#: When True every output buffer the kernels allocate starts as NaN, so an element a
#: kernel forgets to write fails the comparison instead of passing as leftover memory.
#: The tests turn it on; it costs one fill per buffer, so it is off otherwise.
POISON = False

#: Elements per program tile. GPU: enough independent loads in flight per program
#: without spilling registers. Interpreter: few, large programs.
GPU_TILE = 4096
INTERPRET_TILE = 1 << 15


def new_empty(shape, *, dtype: torch.dtype, device) -> torch.Tensor:
    """``torch.empty`` for kernel outputs, NaN-filled when :data:`POISON` is on."""
    t = torch.empty(shape, dtype=dtype, device=device)
    if POISON and t.is_floating_point():
        t.fill_(float("nan"))
    return t


def new_empty_like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.empty_like`` (same strides for dense tensors), NaN-filled under :data:`POISON`."""
    t = torch.empty_like(x, dtype=dtype)
    if POISON and t.is_floating_point():
        t.fill_(float("nan"))
    return t


def tile_elems() -> int:
    return INTERPRET_TILE if INTERPRET else GPU_TILE


def num_warps_for(tile: int) -> int:
    """Warps per program for a tile of ``tile`` elements: about 8 elements per thread,
    4 to 16 warps. At 16 elements per thread ptxas gives the RMSNorm backward and the
    cross-entropy kernels 112-128 registers (16 resident warps per SM on Hopper); at 8,
    40-64 registers and 32-48 resident warps, more loads in flight for memory-bound work.
    (``python -m scaling.app.bench kernels --compile-only`` prints these numbers.)"""
    warps = triton.next_power_of_2(max(1, tile // 256))
    return max(4, min(16, warps))


def row_tile(n_rows: int, n_cols: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_C) for kernels that hold whole rows: a row must fit in one tile,
    and several short rows share a program so that each program moves enough bytes."""
    block_c = triton.next_power_of_2(max(n_cols, 1))
    block_r = max(1, tile_elems() // block_c)
    block_r = min(block_r, triton.next_power_of_2(max(n_rows, 1)))
    return block_r, block_c


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def persistent_programs(n_tiles: int, device: torch.device) -> int:
    """Programs for a grid-strided (persistent) launch: a few per SM on CUDA, so each
    program reduces many tiles into one partial sum; two under the interpreter."""
    if device.type == "cuda":
        cap = 4 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    else:
        cap = 2
    return max(1, min(n_tiles, cap))


def check_launchable(*tensors: torch.Tensor, op: str) -> None:
    """Triton launches on CUDA tensors, or on CPU tensors under the interpreter only."""
    dev = tensors[0].device
    for t in tensors[1:]:
        if t.device != dev:
            raise InputError(f"{op} got tensors on {dev} and {t.device}", field=op,
                             fix="move every input of the op to the same device")
    if dev.type != "cuda" and not INTERPRET:
        raise ConfigError(f"{op} with kernels=triton needs CUDA tensors, got {dev}", field="kernels",
                          fix="use kernels=eager or kernels=auto on CPU (or set TRITON_INTERPRET=1 "
                              "before importing triton to run the kernels in the slow interpreter)")


def require(cond: bool, message: str, *, field: str, fix: str) -> None:
    """Raise :class:`InputError` with a one-line message when ``cond`` is false."""
    if not cond:
        raise InputError(message, field=field, fix=fix)


def last_dim_contiguous(x: torch.Tensor) -> torch.Tensor:
    """Kernels index rows by stride but read the last dimension as one contiguous run."""
    return x if x.stride(-1) == 1 else x.contiguous()


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """View (..., C) as (rows, C) without copying when the leading dims collapse to one
    stride (true for contiguous tensors and for column slices such as ``chunk(2, -1)``)."""
    x = last_dim_contiguous(x)
    if x.dim() == 2:
        return x
    try:
        return x.view(-1, x.shape[-1])
    except RuntimeError:
        return x.reshape(-1, x.shape[-1])


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; NaN anywhere in ``out`` gives inf."""
    out, ref = out.detach().double(), ref.detach().double().to(out.device)
    if not torch.isfinite(out).all():
        return float("inf")
    den = ref.norm().item()
    num = (out - ref).norm().item()
    return num / den if den else num


def float64_reference(fn, inputs, grads_out):
    """Run ``fn`` on float64 copies of ``inputs`` (leaves requiring grad) and back-propagate
    ``grads_out`` (one per output, or None for a scalar output). Returns (outputs, grads)."""
    xs = [t.detach().double().requires_grad_() if t.is_floating_point() else t for t in inputs]
    outs = fn(*xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    if grads_out is None:
        torch.autograd.backward(outs)
    else:
        gs = grads_out if isinstance(grads_out, (tuple, list)) else (grads_out,)
        torch.autograd.backward(outs, [g.double() for g in gs])
    return outs, [x.grad for x in xs if x.is_floating_point()]

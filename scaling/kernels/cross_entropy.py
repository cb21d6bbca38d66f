"""Fused LM head + cross-entropy that never materialises the (tokens x vocab) logits.

Loss (mean over the n tokens whose target is not ``ignore_index``), for logits
z = h W^T of one token with target y and lse = log sum_v exp(z_v):
    loss = (1/n) sum_tokens [ lse - z_y + z_loss * lse^2 ]
The last term is PaLM's auxiliary z-loss (Chowdhery et al. 2022, Sec. 5). Its gradient
with respect to the logits is
    dz_v = (1/n) [ softmax(z)_v (1 + 2 z_loss lse) - [v = y] ]     (0 for ignored tokens).

Tokens are processed in chunks of ``chunk`` rows (the idea of Liger-Kernel's fused
linear cross-entropy). Per chunk, all in the forward pass:
  1. logits = h_chunk W^T into one reused (chunk x V) buffer (a cuBLAS GEMM);
  2. one Triton kernel per chunk: pass 1 streams the row for an online logsumexp and
     picks up z_y; pass 2 overwrites the logits with dz in place;
  3. grad_h[chunk] = dz W (GEMM) and grad_W += dz^T h_chunk (GEMM accumulating into
     a float32 buffer).
Backward only multiplies the stored gradients by the incoming scalar. The largest
transient is the (chunk x V) buffer, sized to a byte budget (``LOGITS_CHUNK_BYTES``),
against (tokens x V) logits plus their float32 copies and gradients in eager PyTorch.

The divisor n stays on the device and target ids are not read back to be range-checked
(the caller checks each batch once on the host, :func:`scaling.kernels.check_targets`),
so a call makes no host synchronisation. A batch whose targets are all ignored gives
loss 0 and zero gradients, like the eager reference.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _utils as U
from .reference import linear_cross_entropy as linear_cross_entropy_reference  # noqa: F401

#: Byte budget for the per-chunk logits buffer: large enough that the chunk GEMMs run
#: near peak (about 2k rows at vocab 50k in bf16), small against the full logits.
LOGITS_CHUNK_BYTES = 256 << 20
#: Widest vocabulary slice one program holds in registers per loop step on a GPU
#: (with 16 warps: 8 values a thread, 40 registers on sm_90).
MAX_BLOCK_V = 4096


@triton.jit
def _lse_update(z, cols, tgt, m, s, z_t):
    """One vocabulary block of the online logsumexp (Milakov & Gimelshein 2018)."""
    m_new = tl.maximum(m, tl.max(z, axis=1))
    s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new[:, None]), axis=1)
    z_t += tl.sum(tl.where(cols[None, :] == tgt[:, None], z, 0.0), axis=1)
    return m_new, s, z_t


@triton.jit
def _grad_block(ptrs, mask, cols, tgt, lse, coef, hot):
    z = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    dz = tl.exp(z - lse[:, None]) * coef[:, None] - tl.where(cols[None, :] == tgt[:, None], hot[:, None], 0.0)
    tl.store(ptrs, dz.to(ptrs.dtype.element_ty), mask=mask)


@triton.jit
def _ce_chunk_kernel(LOGITS, TARGETS, LOSS, INV_N, n_rows, n_vocab, stride_l, ignore_index, z_loss,
                     HAS_GRAD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_V: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < n_rows
    tgt = tl.load(TARGETS + rows, mask=rmask, other=ignore_index)
    valid = (tgt != ignore_index) & rmask
    base = LOGITS + rows.to(tl.int64)[:, None] * stride_l
    # Whole blocks carry no column mask, so loads stay 16 bytes wide even when n_vocab is odd
    # (50257); only the tail block is masked by column.
    v_full = (n_vocab // BLOCK_V) * BLOCK_V
    # Pass 1: logsumexp and the target logit. A finite start for the running max keeps
    # fully masked padding rows free of inf - inf = NaN.
    m = tl.full([BLOCK_R], -1e30, dtype=tl.float32)
    s = tl.zeros([BLOCK_R], dtype=tl.float32)
    z_t = tl.zeros([BLOCK_R], dtype=tl.float32)
    for v0 in range(0, v_full, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        z = tl.load(base + cols[None, :], mask=rmask[:, None], other=float("-inf")).to(tl.float32)
        m, s, z_t = _lse_update(z, cols, tgt, m, s, z_t)
    cols = v_full + tl.arange(0, BLOCK_V)
    tail = rmask[:, None] & (cols < n_vocab)[None, :]
    z = tl.load(base + cols[None, :], mask=tail, other=float("-inf")).to(tl.float32)
    m, s, z_t = _lse_update(z, cols, tgt, m, s, z_t)
    # Padding rows (past n_rows) saw only -inf: give them lse = 0 rather than log(0).
    lse = tl.where(rmask, m, 0.0) + tl.log(tl.where(rmask, s, 1.0))
    loss = tl.where(valid, lse - z_t + z_loss * lse * lse, 0.0)
    tl.store(LOSS + rows, loss, mask=rmask)
    if HAS_GRAD:
        # Pass 2: dz = (1/n) (softmax * (1 + 2 z_loss lse) - onehot), written over z;
        # rows with an ignored target get exact zeros (the buffer is reused per chunk).
        inv_n = tl.load(INV_N)
        coef = tl.where(valid, (1.0 + 2.0 * z_loss * lse) * inv_n, 0.0)
        hot = tl.where(valid, inv_n, 0.0)
        for v0 in range(0, v_full, BLOCK_V):
            cols = v0 + tl.arange(0, BLOCK_V)
            _grad_block(base + cols[None, :], rmask[:, None], cols, tgt, lse, coef, hot)
        cols = v_full + tl.arange(0, BLOCK_V)
        _grad_block(base + cols[None, :], rmask[:, None] & (cols < n_vocab)[None, :], cols, tgt, lse, coef, hot)


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def default_chunk(n_tokens: int, vocab: int, dtype: torch.dtype, budget: int | None = None) -> int:
    """Rows per chunk so that one (chunk x vocab) logits buffer fits in ``budget`` bytes
    (default :data:`LOGITS_CHUNK_BYTES`); a multiple of 64 rows when it is that large,
    for GEMM tiles, and never more than the number of tokens."""
    budget = LOGITS_CHUNK_BYTES if budget is None else budget
    elem = dtype.itemsize
    rows = max(1, budget // max(1, _round_up(vocab, 64) * elem))
    if rows >= 64:
        rows -= rows % 64
    return max(1, min(rows, n_tokens))


def ce_launch_shape(n_rows: int, vocab: int):
    """BLOCK_R, BLOCK_V and num_warps for the per-chunk cross-entropy kernel."""
    block_v = min(triton.next_power_of_2(vocab), MAX_BLOCK_V)
    if U.INTERPRET:
        block_r = min(triton.next_power_of_2(n_rows), max(1, U.tile_elems() // block_v))
    else:
        block_r = 1  # one row per program: a chunk has thousands of rows to fill the GPU
    return block_r, block_v, U.num_warps_for(block_r * block_v)


_ADDMM_OUT_DTYPE: dict[str, bool] = {}


def _accumulate_fp32(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """acc += a @ b with acc float32 and a, b possibly half precision.

    Uses cuBLAS's float32-output GEMM (``out_dtype``, torch >= 2.8 on CUDA) so the sum
    over chunks is never rounded to half precision. Elsewhere each chunk's product is
    rounded once and added in float32: an upcast float32 GEMM would run an order of
    magnitude slower on tensor-core GPUs.
    """
    if a.dtype == acc.dtype:
        acc.addmm_(a, b)
        return
    key = acc.device.type
    if _ADDMM_OUT_DTYPE.get(key, True):
        try:
            torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
            _ADDMM_OUT_DTYPE[key] = True
            return
        except (RuntimeError, TypeError, NotImplementedError):
            _ADDMM_OUT_DTYPE[key] = False
    acc.add_(torch.mm(a, b))


def _flce_forward(hidden, weight, targets, ignore_index, z_loss, chunk, grad_hidden, grad_weight):
    """Loss, and (when asked) the gradients of the loss for hidden and weight."""
    M, C = hidden.shape
    V = weight.shape[0]
    dev = hidden.device
    need_grad = grad_hidden or grad_weight
    n_valid = (targets != ignore_index).sum()
    inv_n = (1.0 / n_valid.clamp(min=1).to(torch.float32)).reshape(1)
    loss_rows = U.new_empty((M,), dtype=torch.float32, device=dev)
    gh = U.new_empty((M, C), dtype=hidden.dtype, device=dev) if grad_hidden else None
    gw = torch.zeros((V, C), dtype=torch.float32, device=dev) if grad_weight else None
    chunk = max(1, min(chunk, M)) if M else 1
    # Rows padded to 64 elements: aligned rows let the GEMMs and the kernel use 16-byte
    # accesses at any vocabulary size (the reason nanoGPT pads 50257 to 50304).
    buf = U.new_empty((chunk, _round_up(V, 64)), dtype=hidden.dtype, device=dev)
    # The padding columns are zeroed once and never written again. A GEMM may read past a
    # row's last element: oneDNN's bf16 kernels on CPUs with AVX512-BF16 take an odd K in
    # pairs and multiply the extra element by a zero weight, and 0 * NaN from an
    # uninitialised buffer would poison a whole row of the hidden-state gradient.
    buf[:, V:].zero_()
    for start in range(0, M, chunk):
        end = min(start + chunk, M)
        h = hidden[start:end]
        logits = buf[: end - start, :V]
        torch.mm(h, weight.t(), out=logits)
        block_r, block_v, warps = ce_launch_shape(end - start, V)
        _ce_chunk_kernel[(triton.cdiv(end - start, block_r),)](
            logits, targets[start:end], loss_rows[start:end], inv_n, end - start, V, logits.stride(0),
            ignore_index, float(z_loss),
            HAS_GRAD=need_grad, BLOCK_R=block_r, BLOCK_V=block_v, num_warps=warps)
        if gh is not None:
            torch.mm(logits, weight, out=gh[start:end])
        if gw is not None:
            _accumulate_fp32(gw, logits.t(), h)
    loss = loss_rows.sum() * inv_n[0]
    return loss, gh, (gw.to(weight.dtype) if gw is not None else None)


# Registered with torch.library so that torch.compile keeps the op in its graph as one
# opaque node (fake shapes and the autograd formula below) instead of breaking the graph
# at the chunk loop. The gradients are computed in the forward pass; they are outputs
# of the op that autograd saves, and backward only scales them. An input that needs no
# gradient gets a (0,) placeholder, since an op's outputs cannot be None.
@torch.library.custom_op("scaling::linear_cross_entropy", mutates_args=())
def _flce_op(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int,
             z_loss: float, chunk: int, grad_hidden: bool,
             grad_weight: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # The chunk GEMMs run in the inputs' dtype, which the wrapper already chose.
    with torch.autocast(hidden.device.type, enabled=False):
        loss, gh, gw = _flce_forward(hidden, weight, targets, ignore_index, z_loss, chunk,
                                     grad_hidden, grad_weight)
    return (loss, gh if gh is not None else hidden.new_empty((0,)),
            gw if gw is not None else weight.new_empty((0,)))


@_flce_op.register_fake
def _(hidden, weight, targets, ignore_index, z_loss, chunk, grad_hidden, grad_weight):
    return (hidden.new_empty((), dtype=torch.float32),
            hidden.new_empty(hidden.shape if grad_hidden else (0,)),
            weight.new_empty(weight.shape if grad_weight else (0,)))


def _flce_setup(ctx, inputs, output):
    _, gh, gw = output
    ctx.mark_non_differentiable(gh, gw)
    ctx.grads = (inputs[6], inputs[7])
    ctx.save_for_backward(gh, gw)


def _flce_bwd(ctx, grad_loss, _gh, _gw):
    gh, gw = ctx.saved_tensors
    want_h, want_w = ctx.grads
    # Out of place: a retained graph may run backward twice over the same buffers.
    dh = gh * grad_loss.to(gh.dtype) if want_h else None
    dw = gw * grad_loss.to(gw.dtype) if want_w else None
    return dh, dw, None, None, None, None, None, None


_flce_op.register_autograd(_flce_bwd, setup_context=_flce_setup)


def _check(hidden, weight, targets):
    U.require(hidden.dim() >= 1 and weight.dim() == 2 and hidden.shape[-1] == weight.shape[1],
              f"hidden has shape {tuple(hidden.shape)} but weight has shape {tuple(weight.shape)}",
              field="linear_cross_entropy", fix="pass hidden (M, C) and weight (V, C) with the same C")
    U.require(tuple(targets.shape) == tuple(hidden.shape[:-1]),
              f"targets have shape {tuple(targets.shape)}, expected {tuple(hidden.shape[:-1])}",
              field="linear_cross_entropy", fix="give one target per row of hidden")
    U.require(not targets.is_floating_point() and not targets.is_complex(),
              f"targets must be integer token ids, got {targets.dtype}",
              field="linear_cross_entropy", fix="pass targets as a torch.long tensor")
    U.require(hidden.is_floating_point() and weight.is_floating_point(),
              f"hidden and weight must be floating point, got {hidden.dtype} and {weight.dtype}",
              field="linear_cross_entropy", fix="cast them to float32 or bfloat16")
    U.check_launchable(hidden, weight, targets, op="linear_cross_entropy")


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                               ignore_index: int = -100, z_loss: float = 0.0,
                               chunk_size: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` over targets != ignore_index, plus the
    optional z-loss, without materialising the full logits.

    hidden (M, C) (or (..., C) with targets (...)), weight (V, C), targets (M,) int.
    Same function as :func:`scaling.kernels.reference.linear_cross_entropy`. Under
    autocast the GEMMs run in the autocast dtype; otherwise hidden and weight are
    promoted to a common dtype. ``chunk_size`` (rows per chunk) defaults to the largest
    that keeps one chunk of logits under :data:`LOGITS_CHUNK_BYTES`.

    Target ids are not range-checked here (that would read a flag back from the device
    on every call): an id outside [0, V) other than ``ignore_index`` silently counts as a
    logit of 0. Check each batch once on the host with :func:`scaling.kernels.check_targets`.
    """
    _check(hidden, weight, targets)
    hidden2 = hidden.reshape(-1, hidden.shape[-1])
    targets2 = targets.reshape(-1).contiguous()
    dev = hidden.device.type
    if torch.is_autocast_enabled(dev):
        cdtype = torch.get_autocast_dtype(dev)
    else:
        cdtype = torch.promote_types(hidden.dtype, weight.dtype)
    # Casts happen outside the op, so autograd hands back gradients in each input's own dtype.
    h = hidden2.to(cdtype).contiguous()
    w = weight.to(cdtype).contiguous()
    if chunk_size is None:
        chunk_size = default_chunk(h.shape[0], w.shape[0], cdtype)
    U.require(int(chunk_size) >= 1, f"chunk_size={chunk_size} is not positive",
              field="chunk_size", fix="pass a positive number of rows, or None for the default")
    grads = torch.is_grad_enabled()
    loss, _, _ = _flce_op(h, w, targets2, int(ignore_index), float(z_loss), int(chunk_size),
                          grads and h.requires_grad, grads and w.requires_grad)
    return loss

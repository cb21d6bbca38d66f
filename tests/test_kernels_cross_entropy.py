"""Fused linear cross-entropy against a float64 PyTorch reference (interpreter on CPU, CUDA when present)."""
import pytest
import torch

from analysis.common.errors import InputError
from scaling.kernels import _utils as U
from scaling.kernels import cross_entropy as CE
from scaling.kernels import reference as R

from kernel_testing import (  # noqa: F401 (the fixture is autouse: poisoned outputs everywhere)
    ANY_DEVICE, DEVICES, assert_no_worse_than_eager, gpu_only, poisoned_outputs_exact_fp32)


def _inputs(M, C, V, device, ignore_every=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(M, C, generator=g).to(device)
    w = (torch.randn(V, C, generator=g) / C ** 0.5 * 3).to(device)  # logits of O(3): a peaked softmax
    t = torch.randint(0, V, (M,), generator=g).to(device)
    if ignore_every:
        t[::ignore_every] = -100
    return h, w, t


def _ours(h, w, t, **kw):
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    loss = CE.fused_linear_cross_entropy(h, w, t, **kw)
    loss.backward()
    return loss, h.grad, w.grad


def _reference(h, w, t, z_loss=0.0):
    (loss,), (gh, gw) = U.float64_reference(lambda a, b, c: R.linear_cross_entropy(a, b, c, z_loss=z_loss),
                                            [h, w, t], None)
    return loss, gh, gw


def _assert_fp32_close(ours, ref):
    loss, gh, gw = ours
    rloss, rgh, rgw = ref
    torch.testing.assert_close(loss.double(), rloss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gh.double(), rgh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw.double(), rgw, rtol=1e-4, atol=1e-6)
    assert U.rel_err(gh, rgh) < 1e-5 and U.rel_err(gw, rgw) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("M,C,V,chunk,ignore_every,z_loss", [
    (130, 64, 1000, 32, 3, 0.0),     # several chunks, last one short; ignored targets
    (37, 48, 300, None, 0, 1e-3),    # default chunk (one chunk here); z-loss
    (5, 16, 777, 2, 0, 0.1),         # chunks of 2 rows; a z-loss large enough to matter
    (64, 33, 513, 64, 2, 1e-4),      # odd hidden, vocab one past a power of two
], ids=["multichunk", "default-chunk-zloss", "tiny-chunks", "odd-sizes"])
def test_matches_float64_reference_fp32(device, M, C, V, chunk, ignore_every, z_loss):
    h, w, t = _inputs(M, C, V, device, ignore_every, seed=M + V)
    ours = _ours(h, w, t, z_loss=z_loss, chunk_size=chunk)
    _assert_fp32_close(ours, _reference(h, w, t, z_loss))


@pytest.mark.parametrize("device", DEVICES)
def test_vocab_spans_several_blocks_with_a_ragged_last_one(device, monkeypatch):
    monkeypatch.setattr(CE, "MAX_BLOCK_V", 128)  # V = 300: blocks of 128, 128, 44
    h, w, t = _inputs(45, 32, 300, device, ignore_every=4, seed=7)
    _assert_fp32_close(_ours(h, w, t, z_loss=1e-3, chunk_size=16), _reference(h, w, t, 1e-3))


@pytest.mark.parametrize("device", DEVICES)
def test_all_but_one_ignored_and_all_ignored(device):
    h, w, t = _inputs(23, 16, 200, device, seed=3)
    t1 = torch.full_like(t, -100)
    t1[11] = 17
    _assert_fp32_close(_ours(h, w, t1, chunk_size=8), _reference(h, w, t1))
    loss, gh, gw = _ours(h, w, torch.full_like(t, -100), chunk_size=8)
    assert loss.item() == 0.0
    assert torch.equal(gh, torch.zeros_like(gh)) and torch.equal(gw, torch.zeros_like(gw))


@pytest.mark.parametrize("device", DEVICES)
def test_result_does_not_depend_on_chunk_size(device):
    h, w, t = _inputs(50, 24, 211, device, ignore_every=5, seed=11)
    runs = [_ours(h, w, t, z_loss=1e-3, chunk_size=c) for c in (1, 7, 50, 1000)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
def test_largest_logits_buffer_is_one_chunk(device, monkeypatch):
    seen = []
    real = U.new_empty

    def recording(shape, **kw):
        seen.append(tuple(shape))
        return real(shape, **kw)

    monkeypatch.setattr(U, "new_empty", recording)
    M, V, chunk = 96, 400, 16
    h, w, t = _inputs(M, 20, V, device, seed=2)
    _ours(h, w, t, chunk_size=chunk)
    # No (M x V) tensor is created; the only vocabulary-wide one holds a single chunk
    # (its rows padded to 64 elements for alignment).
    assert all(torch.Size(s).numel() < M * V for s in seen)
    wide = [s for s in seen if len(s) == 2 and s[1] >= V]
    assert wide == [(chunk, 448)]


def test_default_chunk_fits_the_budget():
    for V, dtype in ((32000, torch.bfloat16), (50257, torch.bfloat16), (50257, torch.float32)):
        elem = torch.empty((), dtype=dtype).element_size()
        rows = CE.default_chunk(10 ** 6, V, dtype)
        width = -(-V // 64) * 64  # rows of the buffer are padded to 64 elements
        assert rows * width * elem <= CE.LOGITS_CHUNK_BYTES
        assert (rows + 64) * width * elem > CE.LOGITS_CHUNK_BYTES  # and not needlessly small
        assert rows % 64 == 0
    assert CE.default_chunk(10, 50257, torch.bfloat16) == 10
    assert CE.default_chunk(10 ** 6, 10 ** 9, torch.float32) == 1


def test_half_precision_weight_gradient_sums_in_float32():
    # Whatever path this torch build takes (float32-output GEMM or one rounding per
    # chunk), the running sum itself must stay float32: 64 chunks summed in bf16 would
    # lose about 64 x 2^-9 relative.
    g = torch.Generator().manual_seed(0)
    acc = torch.zeros(40, 24)
    total = torch.zeros(40, 24, dtype=torch.float64)
    for _ in range(64):
        a = torch.randn(40, 16, generator=g).bfloat16()
        b = torch.randn(16, 24, generator=g).bfloat16()
        CE._accumulate_fp32(acc, a, b)
        total += a.double() @ b.double()
    assert acc.dtype == torch.float32
    assert U.rel_err(acc, total) < 3e-3


@pytest.mark.parametrize("device", DEVICES)
def test_upstream_gradient_scales_and_frozen_weight(device):
    h, w, t = _inputs(40, 16, 150, device, ignore_every=3, seed=4)
    hh = h.detach().requires_grad_()
    (2.5 * CE.fused_linear_cross_entropy(hh, w, t, chunk_size=9)).backward()
    _, rgh, _ = _reference(h, w, t)
    torch.testing.assert_close(hh.grad.double(), 2.5 * rgh, rtol=1e-4, atol=1e-6)
    assert w.grad is None


@pytest.mark.parametrize("device", DEVICES)
def test_batched_input_and_no_grad(device):
    h, w, t = _inputs(2 * 13, 16, 120, device, ignore_every=4, seed=6)
    loss3d, gh3d, _ = _ours(h.view(2, 13, 16), w, t.view(2, 13), chunk_size=5)
    assert gh3d.shape == (2, 13, 16)
    rloss, rgh, _ = _reference(h, w, t)
    torch.testing.assert_close(loss3d.double(), rloss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gh3d.reshape(26, 16).double(), rgh, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        loss_ng = CE.fused_linear_cross_entropy(h, w, t, chunk_size=5)
    assert loss_ng.grad_fn is None
    torch.testing.assert_close(loss_ng.double(), rloss, rtol=1e-5, atol=1e-6)


def test_target_range_is_checked_on_the_host_not_in_the_call():
    import numpy as np
    from torch.utils._python_dispatch import TorchDispatchMode

    from scaling.kernels import check_targets

    # The host-side check, on numpy batches and CPU tensors alike; ignore_index passes.
    for bad in (np.array([0, 1, 10, -100]), torch.tensor([0, 1, -1, 9]), torch.tensor([[3], [12]])):
        with pytest.raises(InputError, match="outside"):
            check_targets(bad, 10)
    check_targets(np.array([0, 9, -100]), 10)
    check_targets(torch.full((3,), -7), 10, ignore_index=-7)
    check_targets(np.zeros((0,), dtype=np.int64), 10)

    class HostReads(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default,
                        torch.ops.aten.item.default):
                self.n += 1
            return func(*args, **(kwargs or {}))

    # The call itself reads nothing back from the device (the old per-call range check
    # did, through bool(bad.any())).
    dev = ANY_DEVICE
    h = torch.randn(4, 8, device=dev, requires_grad=True)
    w = torch.randn(10, 8, device=dev, requires_grad=True)
    with HostReads() as reads:
        loss = CE.fused_linear_cross_entropy(h, w, torch.tensor([0, 1, 9, -100], device=dev))
        loss.backward()
    assert reads.n == 0


def test_bad_inputs_raise_named_errors():
    dev = ANY_DEVICE
    h, w = torch.randn(4, 8, device=dev), torch.randn(10, 8, device=dev)
    with pytest.raises(InputError, match="targets"):
        CE.fused_linear_cross_entropy(h, w, torch.zeros(3, dtype=torch.long, device=dev))
    with pytest.raises(InputError, match="hidden"):
        CE.fused_linear_cross_entropy(h, torch.randn(10, 9, device=dev), torch.zeros(4, dtype=torch.long, device=dev))
    with pytest.raises(InputError, match="integer"):
        CE.fused_linear_cross_entropy(h, w, torch.zeros(4, device=dev))


def _check_bf16(M, C, V, device):
    h, w, t = _inputs(M, C, V, device, ignore_every=7, seed=1)
    h, w = h.bfloat16(), w.bfloat16()
    ours = _ours(h, w, t, z_loss=1e-4, chunk_size=max(1, M // 3))
    he, we = h.detach().requires_grad_(), w.detach().requires_grad_()
    le = R.linear_cross_entropy(he, we, t, z_loss=1e-4)
    le.backward()
    ref = _reference(h, w, t, 1e-4)
    assert_no_worse_than_eager(zip(ours, (le, he.grad, we.grad), ref))


@gpu_only
@pytest.mark.parametrize("M,C,V", [(4096, 768, 32000), (1000, 1024, 50257)])
def test_bf16_no_worse_than_eager(M, C, V):
    _check_bf16(M, C, V, "cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_no_worse_than_eager_small(device):
    _check_bf16(96, 48, 333, device)


def _check_autocast_fp32_weights(M, C, V, device):
    h, w, t = _inputs(M, C, V, device, ignore_every=5, seed=9)
    hh, ww = h.detach().requires_grad_(), w.detach().requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16):
        loss = CE.fused_linear_cross_entropy(hh, ww, t)
    loss.backward()
    assert hh.grad.dtype == torch.float32 and ww.grad.dtype == torch.float32
    rloss, rgh, rgw = _reference(h, w, t)
    assert abs(loss.item() - rloss.item()) / rloss.item() < 1e-2
    assert U.rel_err(hh.grad, rgh) < 2e-2 and U.rel_err(ww.grad, rgw) < 2e-2


@gpu_only
def test_autocast_with_fp32_weights():
    _check_autocast_fp32_weights(512, 256, 5000, "cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_with_fp32_weights_small(device):
    _check_autocast_fp32_weights(64, 32, 257, device)


def _gemm_reading_one_past_each_row(real_mm):
    """torch.mm as oneDNN's bf16 kernels on AVX512-BF16 CPUs behave for an odd K: the
    element after each row of a row-padded A is read too and multiplied by a zero weight,
    so a non-finite value there turns that whole output row NaN. Exact otherwise."""
    def mm(a, b, *, out=None):
        res = real_mm(a, b)
        if a.dim() == 2 and a.stride(1) == 1 and a.stride(0) > a.shape[1] and a.shape[0]:
            extra = a.as_strided((a.shape[0], 1), (a.stride(0), 1), a.storage_offset() + a.shape[1])
            res = res + (extra.to(res.dtype) * 0)
        if out is None:
            return res
        return out.copy_(res)
    return mm


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_padding_never_reaches_a_result(device, dtype, monkeypatch):
    # The logits buffer's rows are padded from V = 333 to 384 columns. Its padding is
    # filled with NaN on purpose (whatever the allocator returns), and the GEMMs read past
    # each row as some CPU BLAS kernels do: no NaN may reach the loss or a gradient.
    poisoned = []
    real_empty = U.new_empty

    def nan_filled(shape, **kw):
        t = real_empty(shape, **kw)
        if t.is_floating_point():
            t.fill_(float("nan"))
            poisoned.append(tuple(shape))
        return t

    monkeypatch.setattr(U, "new_empty", nan_filled)
    monkeypatch.setattr(torch, "mm", _gemm_reading_one_past_each_row(torch.mm))
    h, w, t = _inputs(96, 48, 333, device, ignore_every=7, seed=11)
    loss, gh, gw = _ours(h.to(dtype), w.to(dtype), t, chunk_size=40)
    monkeypatch.undo()
    assert (40, 384) in poisoned  # the padded buffer really started as NaN
    assert torch.isfinite(loss) and torch.isfinite(gh).all() and torch.isfinite(gw).all()
    rloss, rgh, rgw = _reference(h.to(dtype), w.to(dtype), t)
    bound = 1e-5 if dtype == torch.float32 else 2e-2
    assert abs(loss.item() - rloss.item()) / rloss.item() < bound
    assert U.rel_err(gh, rgh) < bound and U.rel_err(gw, rgw) < bound

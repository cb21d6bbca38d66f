"""RoPE Triton kernel against a float64 PyTorch reference (interpreter on CPU, CUDA when present)."""
import pytest
import torch

from analysis.common.errors import InputError
from scaling.kernels import _utils as U
from scaling.kernels import reference as R

from kernel_testing import (  # noqa: F401 (the fixture is autouse: poisoned outputs everywhere)
    ANY_DEVICE, DEVICES, assert_no_worse_than_eager, gpu_only, poisoned_outputs_exact_fp32)


def _tables(T, hs, device, base=10000.0):
    # LLaMA's frequencies (Su et al. 2021): theta_i = base^(-2i/hs)
    inv = base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float().to(device), ang.sin().float().to(device)


def _qk(B, nh, nkv, T, hs, device, transposed):
    if transposed:  # the usual (B, T, heads, hs) projection viewed as (B, heads, T, hs)
        q = torch.randn(B, T, nh, hs, device=device).transpose(1, 2)
        k = torch.randn(B, T, nkv, hs, device=device).transpose(1, 2)
    else:
        q = torch.randn(B, nh, T, hs, device=device)
        k = torch.randn(B, nkv, T, hs, device=device)
    return q, k


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [(1, 1, 1, 1, 2), (2, 4, 2, 37, 24), (2, 3, 3, 130, 64), (1, 6, 1, 17, 46)],
                         ids=lambda d: "B{}nh{}nkv{}T{}hs{}".format(*d))
@pytest.mark.parametrize("transposed", [False, True], ids=["contiguous", "transposed"])
def test_matches_float64_reference_fp32(device, dims, transposed):
    from scaling.kernels.rope import apply_rope

    torch.manual_seed(sum(dims))
    B, nh, nkv, T, hs = dims
    cos, sin = _tables(T, hs, device)
    q, k = _qk(B, nh, nkv, T, hs, device, transposed)
    q0, k0 = q.clone(), k.clone()
    qr, kr = q.detach().requires_grad_(), k.detach().requires_grad_()
    qo, ko = apply_rope(qr, kr, cos, sin)
    dq, dk = torch.randn_like(qo), torch.randn_like(ko)
    torch.autograd.backward([qo, ko], [dq, dk])
    (rq, rk), (rdq, rdk) = U.float64_reference(lambda a, b: R.apply_rope(a, b, cos.double(), sin.double()),
                                               [q, k], [dq, dk])
    for ours, ref in ((qo, rq), (ko, rk), (qr.grad, rdq), (kr.grad, rdk)):
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(q, q0) and torch.equal(k, k0)  # inputs untouched


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_inverse_rotation_and_shared_inputs_keep_their_grad(device):
    from scaling.kernels.rope import apply_rope

    torch.manual_seed(5)
    B, nh, nkv, T, hs = 2, 4, 2, 19, 32
    cos, sin = _tables(T, hs, device)
    q, k = _qk(B, nh, nkv, T, hs, device, transposed=True)
    q = q.detach().requires_grad_()
    k = k.detach().requires_grad_()
    # Rotating by -theta undoes the rotation.
    qo, ko = apply_rope(q, k, cos, sin)
    qb, kb = apply_rope(qo, ko, cos, -sin)
    torch.testing.assert_close(qb, q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kb, k, rtol=1e-5, atol=1e-5)
    # q also feeds another branch: its gradient is the sum of both paths, so the kernel
    # must not have rotated q in place.
    wq, w = torch.randn_like(q), torch.randn_like(q)

    def loss_fn(rope, qq, kk, c, s):
        qo, ko = rope(qq, kk, c, s)
        return (qo * wq.to(qq.dtype)).sum() + (ko ** 2).sum() + (qq * w.to(qq.dtype)).sum()

    gq, gk = torch.autograd.grad(loss_fn(apply_rope, q, k, cos, sin), [q, k])
    _, (rgq, rgk) = U.float64_reference(
        lambda a, b: loss_fn(R.apply_rope, a, b, cos.double(), sin.double()), [q, k], None)
    torch.testing.assert_close(gq.double(), rgq, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gk.double(), rgk, rtol=1e-5, atol=1e-5)


def _check_bf16(dims, device):
    from scaling.kernels.rope import apply_rope

    torch.manual_seed(0)
    B, nh, nkv, T, hs = dims
    cos, sin = _tables(T, hs, device)
    q, k = _qk(B, nh, nkv, T, hs, device, transposed=True)
    q, k = q.bfloat16(), k.bfloat16()
    qr, kr = q.detach().requires_grad_(), k.detach().requires_grad_()
    qo, ko = apply_rope(qr, kr, cos, sin)
    assert qo.dtype == ko.dtype == torch.bfloat16
    dq, dk = torch.randn_like(qo), torch.randn_like(ko)
    torch.autograd.backward([qo, ko], [dq, dk])
    qe, ke = q.detach().requires_grad_(), k.detach().requires_grad_()
    eq, ek = R.apply_rope(qe, ke, cos, sin)
    torch.autograd.backward([eq, ek], [dq, dk])
    (rq, rk), (rdq, rdk) = U.float64_reference(lambda a, b: R.apply_rope(a, b, cos.double(), sin.double()),
                                               [q, k], [dq, dk])
    assert_no_worse_than_eager([(qo, eq, rq), (ko, ek, rk), (qr.grad, qe.grad, rdq), (kr.grad, ke.grad, rdk)])


@gpu_only
@pytest.mark.parametrize("dims", [(8, 12, 12, 1024, 64), (4, 16, 4, 512, 128), (3, 5, 1, 77, 48)],
                         ids=lambda d: "B{}nh{}nkv{}T{}hs{}".format(*d))
def test_bf16_no_worse_than_eager(dims):
    _check_bf16(dims, "cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [(2, 4, 2, 37, 24), (1, 3, 1, 17, 64)], ids=lambda d: "B{}nh{}nkv{}T{}hs{}".format(*d))
def test_bf16_no_worse_than_eager_small(device, dims):
    _check_bf16(dims, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [(2, 4, 2, 13, 24), (1, 3, 3, 9, 46), (2, 6, 1, 5, 8)],
                         ids=lambda d: "B{}nh{}nkv{}T{}hs{}".format(*d))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_fused_projection_form(device, dims, dtype):
    from scaling.kernels.rope import rope_qkv

    torch.manual_seed(sum(dims))
    B, nh, nkv, T, hs = dims
    cos, sin = _tables(T, hs, device)
    # The fused projection (B, T, nh + 2 nkv, hs) as the model views a linear layer's output.
    qkv = torch.randn(B, T, (nh + 2 * nkv) * hs, device=device).to(dtype).view(B, T, nh + 2 * nkv, hs)
    x = qkv.detach().requires_grad_()
    q, k, v = rope_qkv(x, cos, sin, nh, nkv)
    assert q.shape == (B, nh, T, hs) and k.shape == v.shape == (B, nkv, T, hs)
    assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous()
    # The op hands autograd the whole projection's gradient: no concatenation node, and
    # nothing saved but the tables.
    assert [type(f).__name__ for f, _ in q.grad_fn.next_functions if f is not None] == ["AccumulateGrad"]
    assert all(t.shape == (T, hs // 2) for t in q.grad_fn.saved_tensors)
    grads = [torch.randn_like(t) for t in (q, k, v)]
    torch.autograd.backward([q, k, v], grads)
    outs, (rdx,) = U.float64_reference(lambda a: R.rope_qkv(a, cos.double(), sin.double(), nh, nkv), [qkv], grads)
    if dtype == torch.float32:
        for ours, ref in zip((q, k, v, x.grad), (*outs, rdx)):
            torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-5)
    else:
        xe = qkv.detach().requires_grad_()
        eager = R.rope_qkv(xe, cos, sin, nh, nkv)
        torch.autograd.backward(list(eager), grads)
        assert_no_worse_than_eager(list(zip((q, k, v, x.grad), (*eager, xe.grad), (*outs, rdx))))
        assert torch.equal(v, eager[2])  # v is moved, not rounded


def test_bad_tables_raise_named_error():
    from scaling.kernels.rope import apply_rope

    dev = ANY_DEVICE
    q = torch.randn(1, 2, 5, 8, device=dev)
    with pytest.raises(InputError, match="apply_rope.*cos/sin"):
        apply_rope(q, q, torch.randn(5, 8, device=dev), torch.randn(5, 8, device=dev))
    with pytest.raises(InputError, match="odd"):
        apply_rope(q[..., :7], q[..., :7], torch.randn(5, 3, device=dev), torch.randn(5, 3, device=dev))

"""SwiGLU Triton kernel against a float64 PyTorch reference (interpreter on CPU, CUDA when present)."""
import pytest
import torch

from analysis.common.errors import InputError
from scaling.kernels import _utils as U
from scaling.kernels import reference as R

from kernel_testing import (  # noqa: F401 (the fixture is autouse: poisoned outputs everywhere)
    ANY_DEVICE, DEVICES, assert_no_worse_than_eager, gpu_only, poisoned_outputs_exact_fp32)


def _run(g, u, dy):
    from scaling.kernels.swiglu import swiglu

    g, u = g.detach().requires_grad_(), u.detach().requires_grad_()
    y = swiglu(g, u)
    y.backward(dy)
    return y, g.grad, u.grad


def _check_fp32(g, u, dy):
    y, dg, du = _run(g, u, dy)
    (ry,), (rdg, rdu) = U.float64_reference(R.swiglu, [g, u], dy)
    for ours, ref in ((y, ry), (dg, rdg), (du, rdu)):
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 123), (130, 257), (2, 3, 1000)], ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_reference_fp32(device, shape):
    torch.manual_seed(sum(shape))
    g = torch.randn(shape, device=device) * 4  # reaches the tails of the sigmoid
    u = torch.randn(shape, device=device)
    _check_fp32(g, u, torch.randn(shape, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_halves_of_a_fused_projection_and_small_tiles(device, monkeypatch):
    # Row-strided views (chunk of a wider tensor) and tiles smaller than a row, so both
    # grid axes have ragged last blocks.
    monkeypatch.setattr(U, "INTERPRET_TILE", 64)
    monkeypatch.setattr(U, "GPU_TILE", 64)
    torch.manual_seed(3)
    gu = torch.randn(3, 11, 2 * 97, device=device)
    g, u = gu.chunk(2, dim=-1)
    assert not g.is_contiguous()
    _check_fp32(g, u, torch.randn(3, 11, 97, device=device))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # numpy's sigmoid tail
@pytest.mark.parametrize("device", DEVICES)
def test_extreme_gates_stay_finite(device):
    g = torch.tensor([[-100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0]], device=device)
    u = torch.ones_like(g)
    _check_fp32(g, u, torch.ones_like(g))


@pytest.mark.parametrize("device", DEVICES)
def test_saves_only_gate_and_up(device):
    from scaling.kernels.swiglu import swiglu

    g = torch.randn(6, 10, device=device, requires_grad=True)
    u = torch.randn(6, 10, device=device, requires_grad=True)
    saved = swiglu(g, u).grad_fn.saved_tensors
    assert len(saved) == 2
    assert torch.equal(saved[0], g.detach()) and torch.equal(saved[1], u.detach())


def _check_bf16(shape, device):
    torch.manual_seed(0)
    g = (torch.randn(shape, device=device) * 3).bfloat16()
    u = torch.randn(shape, device=device).bfloat16()
    dy = torch.randn(shape, device=device).bfloat16()
    y, dg, du = _run(g, u, dy)
    assert y.dtype == dg.dtype == du.dtype == torch.bfloat16
    ge, ue = g.clone().requires_grad_(), u.clone().requires_grad_()
    ye = R.swiglu(ge, ue)
    ye.backward(dy)
    (ry,), (rdg, rdu) = U.float64_reference(R.swiglu, [g, u], dy)
    assert_no_worse_than_eager([(y, ye, ry), (dg, ge.grad, rdg), (du, ue.grad, rdu)])
    torch.testing.assert_close(y, ye, rtol=1.6e-2, atol=1e-2)


@gpu_only
@pytest.mark.parametrize("shape", [(4096, 2048), (1000, 2816), (7, 123)], ids=lambda s: "x".join(map(str, s)))
def test_bf16_no_worse_than_eager(shape):
    _check_bf16(shape, "cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(7, 123), (3, 5, 200)], ids=lambda s: "x".join(map(str, s)))
def test_bf16_no_worse_than_eager_small(device, shape):
    _check_bf16(shape, device)


def _run_packed(gu, dy):
    from scaling.kernels.swiglu import swiglu_packed

    gu = gu.detach().requires_grad_()
    y = swiglu_packed(gu)
    y.backward(dy)
    return y, gu.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_packed_form_writes_one_gradient_buffer(device, dtype):
    from scaling.kernels.swiglu import swiglu_packed

    torch.manual_seed(4)
    gu = (torch.randn(3, 11, 2 * 97, device=device) * 3).to(dtype)
    dy = torch.randn(3, 11, 97, device=device).to(dtype)
    y, dgu = _run_packed(gu, dy)
    (ry,), (rdgu,) = U.float64_reference(R.swiglu_packed, [gu], dy)
    if dtype == torch.float32:
        torch.testing.assert_close(y.double(), ry, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dgu.double(), rdgu, rtol=1e-5, atol=1e-5)
    else:
        gue = gu.detach().requires_grad_()
        ye = R.swiglu_packed(gue)
        ye.backward(dy)
        assert_no_worse_than_eager([(y, ye, ry), (dgu, gue.grad, rdgu)])
    # Autograd gets the (..., 2H) gradient from the op itself: no concatenation node.
    x = gu.detach().requires_grad_()
    out = swiglu_packed(x)
    assert "Cat" not in type(out.grad_fn).__name__
    assert [type(f).__name__ for f, _ in out.grad_fn.next_functions] == ["AccumulateGrad"]
    saved = out.grad_fn.saved_tensors
    assert len(saved) == 1 and saved[0].shape == x.shape  # only the projection is kept


def test_mismatched_shapes_raise_named_error():
    from scaling.kernels.swiglu import swiglu

    dev = ANY_DEVICE
    with pytest.raises(InputError, match="swiglu"):
        swiglu(torch.randn(3, 8, device=dev), torch.randn(3, 9, device=dev))

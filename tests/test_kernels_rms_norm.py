"""RMSNorm Triton kernel against a float64 PyTorch reference (interpreter on CPU, CUDA when present)."""
import pytest
import torch

from analysis.common.errors import InputError
from scaling.kernels import _utils as U
from scaling.kernels import reference as R

from kernel_testing import (  # noqa: F401 (the fixture is autouse: poisoned outputs everywhere)
    ANY_DEVICE, DEVICES, assert_no_worse_than_eager, gpu_only, poisoned_outputs_exact_fp32)


def _run(x, w, eps, dy):
    from scaling.kernels.rms_norm import rms_norm

    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    y = rms_norm(x, w, eps)
    y.backward(dy)
    return y, x.grad, w.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1, 8), (5, 123), (37, 128), (130, 257), (2, 17, 96)],
                         ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_reference_fp32(device, shape):
    torch.manual_seed(sum(shape))
    C = shape[-1]
    x = torch.randn(shape, device=device) * 3 + 0.5
    w = torch.randn(C, device=device)
    dy = torch.randn(shape, device=device)
    eps = 1e-6
    y, dx, dw = _run(x, w, eps, dy)
    (ry,), (rdx, rdw) = U.float64_reference(lambda a, b: R.rms_norm(a, b, eps), [x, w], dy)
    torch.testing.assert_close(y.double(), ry, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx.double(), rdx, rtol=1e-5, atol=1e-5)
    # dw sums over every row: a reduction, so a looser bound
    torch.testing.assert_close(dw.double(), rdw, rtol=1e-4, atol=1e-4)
    assert U.rel_err(dw, rdw) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_row_strided_input_and_many_programs(device, monkeypatch):
    # Small tiles force many row tiles and several persistent programs, so the dw
    # partial sums of different programs must be combined correctly.
    monkeypatch.setattr(U, "INTERPRET_TILE", 256)
    monkeypatch.setattr(U, "GPU_TILE", 256)
    torch.manual_seed(1)
    base = torch.randn(67, 200, device=device)
    x = base[:, :123]  # rows 200 elements apart
    w = torch.rand(123, device=device) + 0.5
    dy = torch.randn(67, 123, device=device)
    y, dx, dw = _run(x, w, 1e-5, dy)
    (ry,), (rdx, rdw) = U.float64_reference(lambda a, b: R.rms_norm(a, b, 1e-5), [x, w], dy)
    torch.testing.assert_close(y.double(), ry, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx.double(), rdx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw.double(), rdw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_saves_only_inputs_and_per_row_rstd(device):
    from scaling.kernels.rms_norm import rms_norm

    x = torch.randn(4, 9, 33, device=device, requires_grad=True)
    w = torch.randn(33, device=device, requires_grad=True)
    y = rms_norm(x, w, 1e-5)
    saved = y.grad_fn.saved_tensors
    extra = [t for t in saved if t.shape not in (torch.Size([4, 9, 33]), torch.Size([33]))]
    assert len(extra) == 1 and extra[0].shape == (36,) and extra[0].dtype == torch.float32
    rstd = extra[0]
    ref = torch.rsqrt(x.detach().double().reshape(36, 33).pow(2).mean(-1) + 1e-5)
    torch.testing.assert_close(rstd.double(), ref, rtol=1e-6, atol=0)


def _check_bf16(shape, device):
    torch.manual_seed(0)
    C = shape[-1]
    x = torch.randn(shape, device=device).bfloat16()
    w = (torch.rand(C, device=device) + 0.5).bfloat16()
    dy = torch.randn(shape, device=device).bfloat16()
    y, dx, dw = _run(x, w, 1e-5, dy)
    assert y.dtype == dx.dtype == dw.dtype == torch.bfloat16
    xe, we = x.clone().requires_grad_(), w.clone().requires_grad_()
    ey = R.rms_norm(xe, we, 1e-5)
    ey.backward(dy)
    (ry,), (rdx, rdw) = U.float64_reference(lambda a, b: R.rms_norm(a, b, 1e-5), [x, w], dy)
    assert_no_worse_than_eager([(y, ey, ry), (dx, xe.grad, rdx), (dw, we.grad, rdw)])
    torch.testing.assert_close(y, ey, rtol=1.6e-2, atol=1e-2)  # bf16 rounding apart from eager bf16


@gpu_only
@pytest.mark.parametrize("shape", [(4096, 768), (1000, 1024), (333, 2816)], ids=lambda s: "x".join(map(str, s)))
def test_bf16_no_worse_than_eager(shape):
    _check_bf16(shape, "cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(37, 96), (3, 5, 257)], ids=lambda s: "x".join(map(str, s)))
def test_bf16_no_worse_than_eager_small(device, shape):
    _check_bf16(shape, device)


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_writes_bf16_and_keeps_fp32_gradients(device):
    # Under autocast the residual stream (x) is float32 but the norm's output feeds a
    # linear layer, which would cast it to bf16: the kernel writes bf16 directly. The
    # eager path (float32 out, cast by the consumer) is the reference.
    from scaling.kernels.rms_norm import rms_norm

    torch.manual_seed(2)
    x = (torch.randn(4, 7, 48, device=device) * 2).requires_grad_()
    w = (torch.rand(48, device=device) + 0.5).requires_grad_()
    dy = torch.randn(4, 7, 48, device=device).bfloat16()
    with torch.autocast(device, dtype=torch.bfloat16):
        y = rms_norm(x, w, 1e-5)
    assert y.dtype == torch.bfloat16
    y.backward(dy)
    xe, we = x.detach().requires_grad_(), w.detach().requires_grad_()
    ye = R.rms_norm(xe, we, 1e-5).to(torch.bfloat16)  # what the next linear layer sees in eager
    ye.backward(dy)
    assert x.grad.dtype == w.grad.dtype == torch.float32
    # The same float32 value rounded once to bf16: at most one ulp apart. A GPU rounds to
    # nearest as eager does, so there they agree but for rare near-ties; the interpreter
    # rounds toward zero, so about half the elements differ by one ulp there.
    torch.testing.assert_close(y, ye, rtol=2 ** -7, atol=1e-6)
    if device == "cuda":
        assert (y != ye).float().mean() < 0.01
    torch.testing.assert_close(x.grad, xe.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad, we.grad, rtol=1e-4, atol=1e-4)


def test_bad_shapes_raise_named_error():
    from scaling.kernels.rms_norm import rms_norm

    dev = ANY_DEVICE
    with pytest.raises(InputError, match="rms_norm.*weight"):
        rms_norm(torch.randn(3, 8, device=dev), torch.randn(7, device=dev))


def test_the_kernels_pin_triton_fp_fusion_and_a_users_setting_wins():
    # Triton 3.9 warns at the first compiled launch that its FP-fusion default changes in
    # 3.10; the kernels were checked with fusion on, so importing them pins it (silencing
    # the warning), unless the user set it
    import os
    import subprocess
    import sys

    code = "import os, scaling.kernels.rms_norm; print(os.environ['TRITON_DEFAULT_FP_FUSION'])"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_DEFAULT_FP_FUSION"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "TRITON_DEFAULT_FP_FUSION": "0"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"

"""Shared pieces of the kernel tests (tests/test_kernels_*.py).

Each kernel test runs on two devices: the CPU through the Triton interpreter (CI, where
``tests/conftest.py`` sets TRITON_INTERPRET=1 because there is no CUDA) and a CUDA GPU
when present. GPU cases carry the ``gpu`` marker and skip cleanly without one.
"""
import pytest
import torch

from scaling.kernels import _utils as U

CUDA = torch.cuda.is_available()
DEVICES = [
    pytest.param("cpu", id="interpreter", marks=pytest.mark.skipif(not U.INTERPRET, reason="TRITON_INTERPRET is off")),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs CUDA")]),
]
#: For tests that only check argument validation: any device the kernels accept.
ANY_DEVICE = "cuda" if CUDA else "cpu"


def gpu_only(test):
    """Mark a test ``gpu`` and skip it where there is no CUDA device."""
    return pytest.mark.gpu(pytest.mark.skipif(not CUDA, reason="needs CUDA")(test))


@pytest.fixture(autouse=True)
def poisoned_outputs_exact_fp32(monkeypatch):
    """Every buffer a kernel allocates starts as NaN, so an element it never writes fails
    the comparison; and float32 matmuls stay float32 (a TF32 setting left by other code
    would loosen them to ~1e-3). Autouse in every module that imports it."""
    monkeypatch.setattr(U, "POISON", True)
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(old)


def assert_no_worse_than_eager(triples, bound=1e-2):
    """For (ours, eager, float64 reference) triples in half precision: ours is within
    ``bound`` of the reference and no worse than 1.5x eager's error plus 2e-3."""
    for i, (ours, eager, ref) in enumerate(triples):
        err, err_eager = U.rel_err(ours, ref), U.rel_err(eager, ref)
        assert err < bound, (i, err)
        assert err <= 1.5 * err_eager + 2e-3, (i, err, err_eager)


def assert_compiled_matches_eager(eager, ours, idx, tgt):
    """``ours`` under torch.compile(fullgraph=True), which fails on any graph break, gives
    the loss and every gradient of the eager model (same weights) on one batch."""
    compiled = torch.compile(ours, backend="aot_eager", fullgraph=True)
    le = eager(idx, tgt)
    le.backward()
    lt = compiled(idx, tgt)
    lt.backward()
    torch.testing.assert_close(lt, le, rtol=1e-5, atol=1e-6)
    for (name, pe), pt in zip(eager.named_parameters(), ours.parameters()):
        assert U.rel_err(pt.grad, pe.grad) < 1e-5, name

"""Test-wide setup.

TRITON_INTERPRET must be set before triton is first imported anywhere, so that the
Triton kernels run on the CPU interpreter in CI. On a machine with CUDA the GPU is used
instead (set SCALING_TEST_TRITON_INTERPRET=1 to force the interpreter there too).
"""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
# OpenBLAS picks its kernels by CPU (AVX2 or AVX-512) and their sums differ in the last
# bits; an ill-conditioned bootstrap refit (the demo's) then lands elsewhere and the README's
# numbers stop reproducing to the byte. One kernel on every x86-64 machine, set before numpy
# loads OpenBLAS (the Makefile sets it for `make demo` and `make docs` too).
if os.uname().machine == "x86_64":
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
# The scripts that make the docs' numbers live outside the installed package (docs/studies/);
# the tests import them by module name, as they import each other when run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "studies"))


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


if os.environ.get("SCALING_TEST_TRITON_INTERPRET") == "1" or not _has_cuda():
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One token cache for the trainer tests' tiny corpus slice (``trainer_testing.TINY``),
    built by the first run that needs it. A module may define its own ``cache`` instead."""
    return tmp_path_factory.mktemp("token_cache")


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The tiny demo study of ``demo_testing``, trained once per test run (read only)."""
    from demo_testing import tiny_demo

    return tiny_demo(tmp_path_factory)

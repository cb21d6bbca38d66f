"""Saved fits read back by their ``kind``: a law (:class:`analysis.fitting.result.LawFit`), an
allocation (:class:`analysis.fitting.result.AllocationFit`) or a loss-curve fit
(:class:`analysis.fitting.curves.CurveFit`). Apart from the result types so that they need
not know each other."""
from __future__ import annotations

from pathlib import Path

from ..common.errors import RecordError
from .curves import CurveFit
from .result import AllocationFit, LawFit, _read_json

__all__ = ["load_result"]

KINDS = {"LawFit": LawFit, "AllocationFit": AllocationFit, "CurveFit": CurveFit}


def load_result(path: str | Path):
    """Load any saved fit (LawFit, AllocationFit or a loss-curve fit) by its ``kind``."""
    d = _read_json(path)
    kind = d.pop("kind", "LawFit")
    if kind not in KINDS:
        raise RecordError(f"unknown fit kind {kind!r}", field=str(path), fix="save fits with their .save() method")
    return KINDS[kind].from_dict(d)

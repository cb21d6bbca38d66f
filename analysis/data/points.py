"""Selections of a points table that several laws and figures share: the lower envelope
of loss against compute, and the compute-efficient frontier built from it."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["lower_envelope", "frontier_points", "n_distinct", "log_key"]


def lower_envelope(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df``, already in order of compute, whose loss is below every earlier
    row's: with the compute order's ties broken as the caller wants them."""
    loss = df["loss"].to_numpy(float)
    # fmin skips NaN: a row without a loss is never kept and never lowers the bar.
    earlier_best = np.fmin.accumulate(np.concatenate(([np.inf], loss)))[:-1]
    return df[loss < earlier_best]


def frontier_points(points: pd.DataFrame) -> pd.DataFrame:
    """The compute-efficient frontier: points no other point beats with less or equal
    compute (Kaplan et al. 2020, Sec. 6.1: L(C_min) is the envelope of the curves)."""
    return lower_envelope(points.sort_values(["flops", "loss"])).sort_values("flops")


def n_distinct(values, rtol: float = 1e-3) -> int:
    """Distinct values up to a relative tolerance (sizes read back from text differ in the last digits)."""
    v = np.sort(np.log(np.asarray(values, dtype=float)))
    if len(v) == 0:
        return 0
    return int(1 + np.sum(np.diff(v) > rtol))


def log_key(s: pd.Series) -> np.ndarray:
    """A grouping key under which sizes or budgets equal to 0.1% fall together."""
    return np.round(np.log(s.to_numpy(float)), 3)

"""Selections of a points table that several laws and figures share: the lower envelope
of loss against compute, the compute-efficient frontier built from it, and the rows that
repeat one measurement (refused unless they are seeds)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..common.errors import TableError

__all__ = ["lower_envelope", "frontier_points", "n_distinct", "log_key", "repeat_groups", "check_repeats",
           "REPEAT_RTOL", "with_flops", "set_aside_short", "short_threshold"]

#: Points whose N and D agree to this relative tolerance are repeats of one measurement.
REPEAT_RTOL = 1e-6


def with_flops(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``flops`` column: where the table gives none (or a row lacks it), the
    training compute is 6ND (Kaplan et al. 2020, Sec. 2.1: C = 6ND to leading order)."""
    six_nd = 6.0 * df["params"].astype(float) * df["tokens"].astype(float)
    if "flops" not in df.columns:
        return df.assign(flops=six_nd)
    if df["flops"].isna().any():
        return df.assign(flops=df["flops"].astype(float).where(df["flops"].notna(), six_nd))
    return df


def short_threshold(points: pd.DataFrame, min_tokens_per_param: float) -> float:
    """The tokens per parameter under which a run is set aside: ``min_tokens_per_param``,
    lowered to the longest run of the largest size when that is shorter, so that the size
    nearest the question always stays in the fit."""
    if not min_tokens_per_param or "tokens" not in points.columns or not len(points):
        return 0.0
    keys = log_key(points["params"])
    top = keys == keys.max()
    longest = float((points["tokens"].astype(float) / points["params"].astype(float))[top].max())
    return float(min(min_tokens_per_param, longest))


def set_aside_short(points: pd.DataFrame, min_tokens_per_param: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, set aside): the rows trained on fewer tokens per parameter than
    :func:`short_threshold` are set aside (a smaller size all of whose runs are that short
    leaves with them). A table without a tokens column, or a threshold of 0, keeps every row."""
    df = points.reset_index(drop=True)
    threshold = short_threshold(df, min_tokens_per_param)
    if not threshold:
        return df, df.iloc[:0]
    tpp = (df["tokens"].astype(float) / df["params"].astype(float)).to_numpy()
    keep = tpp >= threshold * (1 - 1e-9)
    return df[keep].reset_index(drop=True), df[~keep].reset_index(drop=True)


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


def repeat_groups(points: pd.DataFrame, rtol: float = REPEAT_RTOL) -> np.ndarray:
    """A label per row; rows with the same N and D (to ``rtol``) share one."""
    n = np.log(points["params"].to_numpy(float))
    d = np.log(points["tokens"].to_numpy(float))
    order = np.lexsort((d, n))
    labels = np.empty(len(n), dtype=int)
    g, prev = -1, None
    for i in order:
        if prev is None or abs(n[i] - n[prev]) > rtol or abs(d[i] - d[prev]) > rtol:
            g += 1
        labels[i] = g
        prev = i
    return labels


def check_repeats(points: pd.DataFrame, allow: bool = False) -> np.ndarray | None:
    """Refuse rows that repeat another row's N and D (to 1e-6) unless ``allow`` says they are
    seeds, or they carry different run names (separate runs reaching one budget). Returns the
    repeat labels when there are repeats, for the bootstrap to draw each group as one point."""
    labels = repeat_groups(points)
    if len(np.unique(labels)) == len(labels):
        return None
    if allow:
        return labels
    counts = np.bincount(labels)
    rows = np.flatnonzero(counts[labels] > 1)
    if "run" in points.columns:
        named = points["run"].astype(str).to_numpy()
        if all(len(set(named[labels == g])) == int(counts[g]) for g in np.unique(labels[rows])):
            return labels
    shown = ", ".join(str(i + 1) for i in rows[:6]) + (" ..." if len(rows) > 6 else "")
    raise TableError(f"{len(rows)} rows repeat another row's params and tokens to within {REPEAT_RTOL:g} "
                     f"(rows {shown}): the same measurement twice would shrink every interval", field="rows",
                     fix="drop the copies, or pass --allow-repeats (allow_repeats=True) if they are separate seeds")

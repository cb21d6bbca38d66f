"""Fitting a law to the largest model sizes only, as a choice the backtest makes.

A law fitted to every size weighs the smallest models as much as the largest, and an
extrapolation is about the largest. Where the small models bend away from the form the
large ones follow (the residual-trend check of :mod:`analysis.selection.residual_trend` sees it on
every Porian et al. 2024 table), leaving them out can predict the largest runs better;
where they do not, it only throws data away. Which holds is a question for the data, so
``--law auto`` backtests each law fitted to all sizes and to the largest
:data:`SIZE_CUTS` of them, and keeps a cut only when it predicts the held-out runs
better by more than the tie margin (``analysis.selection.backtest.select_law``; measured in
``docs/analysis.md``).

A cut is a fraction of the distinct sizes of the table being fitted (each backtest split
cuts its own training part the same way), never fewer than :data:`MIN_KEPT_SIZES`.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd

from ..common.errors import InputError
from ..common.text import si
from ..data.points import log_key

__all__ = ["SIZE_CUTS", "MIN_KEPT_SIZES", "kept_count", "largest_sizes", "cut_fraction", "cut_label", "describe_cut",
           "parse_sizes", "AUTO_SIZES"]

#: The fractions of the sizes ``--law auto`` tries, largest first; 1 is every size.
SIZE_CUTS = (1.0, 2 / 3, 1 / 2)
#: A cut keeps at least this many sizes: one more than the Chinchilla form's size term
#: needs (Hoffmann et al. 2022, eq. 2), so a cut never leaves a law at its thinnest design.
MIN_KEPT_SIZES = 4
AUTO_SIZES = "auto"


def _sizes(points: pd.DataFrame) -> np.ndarray:
    return np.unique(log_key(points["params"]))


def kept_count(n_sizes: int, keep: float) -> int:
    """How many of ``n_sizes`` distinct sizes a cut to the largest ``keep`` keeps."""
    if keep >= 1.0:
        return n_sizes
    return min(n_sizes, max(MIN_KEPT_SIZES, math.ceil(keep * n_sizes - 1e-9)))


def largest_sizes(points: pd.DataFrame, keep: float) -> pd.DataFrame:
    """The points of the largest ``keep`` of the distinct model sizes (all with ``keep`` = 1)."""
    if keep >= 1.0:
        return points
    sizes = _sizes(points)
    k = kept_count(len(sizes), keep)
    if k >= len(sizes):
        return points
    return points[log_key(points["params"]) >= sizes[len(sizes) - k]]


def cut_fraction(keep: float) -> str:
    """A cut as the fraction it keeps: ``2/3``, ``1/2``, ``1``."""
    return str(Fraction(keep).limit_denominator(12))


def cut_label(keep: float) -> str:
    """``all sizes``, ``largest 2/3``, ``largest 1/2`` ..."""
    return "all sizes" if keep >= 1.0 else f"largest {cut_fraction(keep)}"


def describe_cut(points: pd.DataFrame, keep: float) -> str:
    """The cut on this table in words: ``the largest 7 of 14 sizes (N >= 120M)``."""
    sizes = _sizes(points)
    k = kept_count(len(sizes), keep)
    if k >= len(sizes):
        return f"all {len(sizes)} sizes"
    kept = largest_sizes(points, keep)
    return f"the largest {k} of {len(sizes)} sizes (N >= {si(float(kept['params'].min()))})"


def parse_sizes(text) -> str | float:
    """``--sizes``: ``auto`` (the backtest chooses), ``all``, or the fraction of the largest
    sizes to fit (``1/2``, ``0.5``)."""
    s = str(text).strip().lower()
    if s == AUTO_SIZES:
        return AUTO_SIZES
    if s == "all":
        return 1.0
    try:
        v = float(Fraction(s))
    except (ValueError, ZeroDivisionError):
        v = float("nan")
    if not (0.0 < v <= 1.0):
        raise InputError(f"{text!r} is not auto, all or a fraction in (0, 1]", field="--sizes",
                         fix="use auto, all, 2/3 or 1/2 (the largest fraction of the model sizes to fit)")
    return v

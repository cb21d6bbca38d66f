"""Stacked combinations of laws: the weights from the backtest, and the fit.

:func:`stack_weights` chooses the weights w_k >= 0, sum 1, that minimise the backtest's
selection score (the mean over splits of the largest held-out relative error) of the
combined prediction sum_k w_k L_k, on a grid of step 0.1 (Breiman 1996, "Stacked
regressions", constrains the weights the same way). :func:`fit_mix` fits each component to
the points on its own and returns one :class:`~analysis.fitting.result.LawFit` of the combination
(:mod:`analysis.laws.mix`), with bootstrap draws row by row from the components' refits of
the same resamples.

Why this exists: on the over-trained parts of Porian et al. 2024's ladders the laws miss
the largest runs in different directions, and a combination chosen on inner backtests
lowers Chinchilla's largest held-out error 1.85-fold, 2.65-fold with the size cuts of
:mod:`analysis.selection.size_cuts` (``docs/analysis.md``, "Backtests and law selection").
"""
from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np

__all__ = ["STEP", "stack_weights", "combined_rows"]

#: Weight grid step: fine enough to matter, coarse enough not to fit the splits' noise.
STEP = 0.1


def _simplex(k: int, step: float):
    n = int(round(1 / step))
    for c in itertools.product(range(n + 1), repeat=k - 1):
        if sum(c) <= n:
            yield np.array([*c, n - sum(c)], dtype=float) / n


def combined_rows(result, weights: Mapping[str, float]) -> list[dict] | None:
    """Per split: held-out mean, max and signed relative error of the combined prediction
    (None when a component has no prediction on some split)."""
    out = []
    for split in dict.fromkeys(r.split for r in result.rows):
        rows = {r.law: r for r in result.rows if r.split == split}
        if any(n not in rows or rows[n].error or rows[n].pred is None for n in weights):
            return None
        y = np.asarray(rows[next(iter(weights))].observed, float)
        pred = sum(w * np.asarray(rows[n].pred, float) for n, w in weights.items())
        rel = pred / y - 1.0
        out.append({"split": split, "mean_rel_error": float(np.mean(np.abs(rel))),
                    "max_rel_error": float(np.max(np.abs(rel))), "mean_signed_error": float(np.mean(rel))})
    return out


def stack_weights(result, step: float = STEP) -> tuple[dict[str, float], float] | None:
    """The weights over the laws refitted on every split that minimise the mean over splits
    of the combined prediction's largest held-out error, and that score; None with fewer
    than two such laws. Ties go to the first weights found (grid order)."""
    laws = [n for n in result.laws if (rows := result.rows_of(n)) and all(not r.error and r.pred is not None
                                                                         for r in rows)]
    if len(laws) < 2:
        return None
    splits = list(dict.fromkeys(r.split for r in result.rows))
    y = {s: np.asarray(next(r.observed for r in result.rows if r.split == s), float) for s in splits}
    P = {s: np.stack([np.asarray(next(r.pred for r in result.rows_of(n) if r.split == s), float) for n in laws])
         for s in splits}
    best, best_w = None, None
    for w in _simplex(len(laws), step):
        v = float(np.mean([np.max(np.abs(w @ P[s] / y[s] - 1.0)) for s in splits]))
        if best is None or v < best - 1e-12:
            best, best_w = v, w
    return {n: float(x) for n, x in zip(laws, best_w) if x > 0}, best

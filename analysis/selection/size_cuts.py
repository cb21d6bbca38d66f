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
from ..data.points import log_key
from ..common.text import si

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


# --- the measurement behind the cut rule: ``python -m analysis.selection.size_cuts``

#: Free-exponent Chinchilla law of the seeded ladders (exponents clearly apart).
LADDER_LAW = {"E": 1.8, "A": 4000.0, "B": 100.0, "alpha": 0.5, "beta": 0.25}
#: Models below this size bend away from it in :func:`bent_ladder`.
BEND_BELOW = 2.2e8


def bent_ladder(seed: int, bend: float = 0.0, n_sizes: int = 10, noise: float = 0.004) -> pd.DataFrame:
    """Every size (20M to 2B) at 5 to 80 tokens per parameter, from :data:`LADDER_LAW` with
    log-normal noise; with ``bend``, models below :data:`BEND_BELOW` lose an extra ``bend``
    per e-fold of size below it (small models on another curve)."""
    from ..laws import chinchilla

    rng = np.random.default_rng(seed)
    sizes = np.geomspace(2e7, 2e9, n_sizes)
    N, D = np.array([(n, t * n) for n in sizes for t in (5.0, 10.0, 20.0, 40.0, 80.0)]).T
    L = chinchilla(N, D, **LADDER_LAW) * (1 + bend * np.clip(np.log(BEND_BELOW / N), 0, None))
    loss = L * np.exp(rng.normal(0.0, noise, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss, "flops": 6 * N * D})


def cut_study(bends=(0.0, 0.04), seeds: int = 10, beyond=(1.5, 4.0)) -> list[dict]:
    """Per ``bend``: how often ``--law auto`` cuts, how much the best cut lowered the score,
    and the largest error at ``beyond`` x the largest size (5 to 80 tokens per parameter,
    truth from :data:`LADDER_LAW`) of the law auto chose, fitted to the chosen sizes and to all."""
    from .backtest import select_law
    from ..fitting.fit import fit_law
    from ..laws import chinchilla

    out = []
    for bend in bends:
        rows = []
        for seed in range(seeds):
            df = bent_ladder(seed, bend)
            choice = select_law(df)
            sc = choice.cut_scores
            gain = 1 - min(v for k, v in sc.items() if k < 1) / sc[1.0] if len(sc) > 1 else 0.0
            chosen, every = (fit_law(largest_sizes(df, k), choice.law, progress=False) for k in (choice.keep, 1.0))
            errs = {}
            for b in beyond:
                N = np.full(5, b * df["params"].max())
                D = N * np.array([5.0, 10.0, 20.0, 40.0, 80.0])
                truth = chinchilla(N, D, **LADDER_LAW)
                errs[b] = tuple(float(np.max(np.abs(f.predict(N=N, D=D) / truth - 1))) for f in (chosen, every))
            rows.append({"keep": choice.keep, "gain": gain, "errors": errs})
        out.append({"bend": bend, "seeds": seeds, "cut": sum(r["keep"] < 1 for r in rows),
                    "gains": [r["gain"] for r in rows],
                    "errors": {b: tuple(float(np.mean([r["errors"][b][i] for r in rows])) for i in (0, 1))
                               for b in beyond}})
    return out


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m analysis.selection.size_cuts",
                                 description="Seeded ladders with and without small models bending away: "
                                             "how often auto cuts, and what the cut does further out.")
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args(argv)
    print("| bend | seeds cut | best cut's score gain (seeds > 0) | "
          "largest error 1.5x out: chosen / all sizes | 4x out: chosen / all sizes |")
    print("|---|---|---|---|---|")
    for r in cut_study(seeds=args.seeds):
        g = [x for x in r["gains"] if x > 0]
        gains = f"{100 * min(g):.0f}-{100 * max(g):.0f}% in {len(g)}" if g else "none"
        e = r["errors"]
        print(f"| {100 * r['bend']:g}% per e-fold below {si(BEND_BELOW)} | {r['cut']} of {r['seeds']} | {gains} | "
              f"{100 * e[1.5][0]:.2f}% / {100 * e[1.5][1]:.2f}% | {100 * e[4.0][0]:.2f}% / {100 * e[4.0][1]:.2f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

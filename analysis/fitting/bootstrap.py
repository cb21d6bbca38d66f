"""Bootstrap resampling for the fits: which points or runs a resample draws, and a
parallel map with a progress bar that runs the refits.

A cluster bootstrap draws whole runs when a table has several points per run, since
points of one run share its training noise (:func:`choose_resample` says when that is
possible and when it is not).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd

from ..common.errors import InputError
from ..data.points import log_key
from ..laws import get_law
from .optimize import HUBER_DELTA, best_of, grid_objective, single_thread_blas, top_k

__all__ = ["bootstrap_indices", "short_of_sizes", "choose_resample", "independent_units", "parallel_map", "refit_chunk",
           "n_jobs_for", "parametric_refits"]

log = logging.getLogger(__name__)


def bootstrap_indices(n: int, B: int, groups=None, seed: int = 0) -> list[np.ndarray]:
    """B resamples of range(n) with replacement; with ``groups`` (one label per point)
    whole groups are drawn, so all points of a run stay together (a cluster bootstrap)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return [rng.integers(0, n, size=n) for _ in range(B)]
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(labels))]
    out = []
    for _ in range(B):
        pick = rng.integers(0, len(labels), size=len(labels))
        out.append(np.concatenate([members[g] for g in pick]))
    return out


def short_of_sizes(run_sizes, needed: int) -> float:
    """Probability that a resample of whole runs holds fewer than ``needed`` distinct sizes.

    ``run_sizes`` has one size label per run. A cluster bootstrap draws as many runs as
    there are, uniformly with replacement (:func:`bootstrap_indices`). Exact: the sizes are
    taken one at a time, and the number of the draws still unassigned that land on the
    next size is binomial with that size's share of the runs not yet taken; the state is
    (draws assigned, sizes drawn so far, capped at ``needed``). Large sweeps skip that
    work: when the union bound over every set of ``needed`` - 1 sizes holding all the
    draws, C(S, needed - 1) (largest such share)^R, is below 1e-9, the bound is returned.
    """
    from scipy.special import comb
    from scipy.stats import binom

    counts = np.unique(np.asarray(run_sizes), return_counts=True)[1]
    if needed <= 1:
        return 0.0
    if len(counts) < needed:
        return 1.0
    R = int(counts.sum())
    bound = comb(len(counts), needed - 1) * (np.sort(counts)[::-1][:needed - 1].sum() / R) ** R
    if bound < 1e-9:
        return float(bound)
    dp = np.zeros((R + 1, needed + 1))
    dp[0, 0] = 1.0
    left = R
    for c in counts:
        q = min(1.0, c / left)
        new = np.zeros_like(dp)
        for j in np.flatnonzero(dp.sum(axis=1)):
            pmf = binom.pmf(np.arange(R - j + 1), R - j, q)
            for m in np.flatnonzero(dp[j]):
                new[j, m] += dp[j, m] * pmf[0]
                new[j + 1:, min(m + 1, needed)] += dp[j, m] * pmf[1:]
        dp, left = new, left - c
    return float(np.clip(dp[R, :needed].sum(), 0.0, 1.0))


def independent_units(df: pd.DataFrame, n_col: str = "params") -> tuple[np.ndarray, str]:
    """(one label per point, what the labels are): the units whose noise is independent, as
    the bootstrap draws them. Runs, given a run column; without one, model sizes when several
    points share a size (cooldown or WSD branches of one run, read without their run);
    otherwise each point. A point whose run is blank shares it with no other."""
    if "run" in df.columns:
        runs = df["run"]
        blank = (runs.isna() | (runs.astype(str).str.strip() == "")).to_numpy()
        if not blank.any():
            return runs.to_numpy(), "runs"
        labels = runs.astype(str).to_numpy(dtype=object)
        labels[blank] = [f"row {i} (no run)" for i in np.flatnonzero(blank)]
        return labels, "runs"
    sizes = log_key(df[n_col])
    if np.unique(sizes).size < len(df):
        return sizes, "model sizes"
    return np.arange(len(df)), "points"


def choose_resample(df: pd.DataFrame, law: str, n_col: str, resample: str, level: float):
    """What the bootstrap draws: (groups for :func:`bootstrap_indices` or None, unit, note, warning).

    Whole runs when the table has runs of several points (their points share the run's
    training noise, so resampling them one by one understates the uncertainty), unless
    too many resamples of whole runs would hold fewer distinct model sizes than the law's
    size term needs (:attr:`analysis.laws.Law.size_terms`): a refit on such a resample cannot determine
    those parameters, and when more of them than the (1 - level)/2 share that decides each
    end of a percentile interval come out, they set the interval's ends. With one run per
    size that happens often (4 sizes: 34% of resamples hold fewer than 3), so ``"auto"``
    then resamples points and says why in ``note``; ``"runs"`` keeps runs and warns.

    A table without a run column whose sizes have several points each (cooldown or WSD
    branches of one run, read without their run) is resampled by whole model sizes under
    ``"auto"``, by the same rule, and the note says so.
    """
    if resample == "runs" and "run" not in df.columns:
        raise InputError("resample='runs' needs a run column", field="resample", fix="use 'points'")
    units, kind = independent_units(df, n_col)
    by_size = resample == "auto" and kind == "model sizes"
    has_runs = kind == "runs" and np.unique(units).size < len(df)
    if not (by_size or has_runs):
        return None, "points", "", ""
    df = df.assign(run=units)
    groups = units
    terms = get_law(law).size_terms
    run_size = df.groupby("run")[n_col].first()
    labels = log_key(run_size)
    share = short_of_sizes(labels, len(terms)) if terms else 0.0
    per_size = np.unique(np.unique(labels, return_counts=True)[1])
    runs = f"{len(run_size)} runs, " + (f"{per_size[0]} per model size" if len(per_size) == 1
                                        else f"{per_size[0]} to {per_size[-1]} per model size")
    tail = (1 - level) / 2
    if share <= tail and by_size:
        return groups, "sizes", ("the bootstrap draws whole model sizes: the table has no run column and several "
                                 "points share a size, and points of one run (its cooldown or WSD branches) share "
                                 "its training noise; give a run column to resample runs instead"), ""
    if by_size:
        return None, "points", (f"the bootstrap resamples points: the table has no run column, and drawing whole "
                                f"model sizes instead would leave {100 * share:.0f}% of resamples with fewer than "
                                f"{len(terms)} distinct sizes, too few to determine {_and(terms)} of {law}"), ""
    if share <= tail:
        if resample == "points":
            return None, "points", ("the bootstrap resamples points, as asked, though whole runs could be "
                                    "resampled: points of one run share its training noise, so these intervals "
                                    "are somewhat too narrow"), ""
        return groups, "runs", "", ""
    why = (f"{100 * share:.0f}% of resamples of whole runs ({runs}) would hold fewer than {len(terms)} distinct "
           f"model sizes, too few to determine {_and(terms)} of {law}, and more than {100 * tail:g}% of "
           f"such refits can set the ends of a {100 * level:g}% interval")
    if resample == "runs":
        return groups, "runs", "", f"resampling whole runs as asked: {why}; resample='auto' resamples points"
    return None, "points", (f"the bootstrap resamples points, not whole runs: {why}. Points of one run share "
                            "its training noise, so these intervals are somewhat too narrow"), ""


def _and(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def refit_chunk(law, X, logy, index_sets, warm, pool, n_grid_starts, delta):
    with single_thread_blas():
        return _refit_chunk_inner(law, X, logy, index_sets, warm, pool, n_grid_starts, delta)


def _refit_chunk_inner(law, X, logy, index_sets, warm, pool, n_grid_starts, delta):
    """Refit on each resample: start from the full-data optimum (and any other local
    optimum the full fit found) and from the best few points of the pruned grid evaluated
    on the resample. Failed refits give NaN rows."""
    form = get_law(law).form
    out = np.full((len(index_sets), len(warm[0])), np.nan)
    for i, idx in enumerate(index_sets):
        Xi = {k: v[idx] for k, v in X.items()}
        yi = logy[idx]
        starts = list(warm)
        if n_grid_starts and len(pool):
            vals = grid_objective(form, pool, Xi, yi, delta)
            starts += list(pool[top_k(vals, n_grid_starts)])
        try:
            theta, f = best_of(form, starts, Xi, yi, delta)
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            continue
        if theta is not None and np.isfinite(f):
            out[i] = theta
    return out


def parametric_refits(law: str, X: dict, logy: np.ndarray, theta, n: int, seed: int = 0,
                      delta: float | None = None) -> tuple[np.ndarray, float]:
    """``n`` refits of ``law`` (form parameters ``theta``, fitted to ``logy`` on log inputs
    ``X``) on the fitted log losses plus Gaussian noise whose scale is the residual RMS with
    its degrees of freedom, sqrt(SSR / (n_points - k)): a parametric bootstrap (Efron and
    Tibshirani 1993, An Introduction to the Bootstrap, Sec. 6.5). Returns the refits in
    natural parameters (one row per refit, the law's parameter order; failed refits left
    out) and the noise scale.

    It serves a single run's curve, where drawing points with replacement cannot work: its
    4 or so stable-phase points are barely more than the 3 parameters, so most resamples
    would hold too few distinct points, and resampled Huber residuals are mostly zero
    (3 of 4 points fit exactly). With one degree of freedom the noise scale is itself
    uncertain, so such an interval is rough; it still shows how far the answer moves under
    loss changes of the size the fit leaves."""

    lawobj = get_law(law)
    form = lawobj.form
    delta = HUBER_DELTA if delta is None else delta
    fitX = {k: X[k] for k in form.inputs}
    theta = np.asarray(theta, dtype=float)
    fitted = form.logpred(theta, fitX)[0]
    dof = len(logy) - len(theta)
    if dof < 1:
        raise InputError(f"{len(logy)} points leave no residual degree of freedom for the {len(theta)} "
                         f"parameters of {law}", field="bootstrap", fix="log the loss at more points, or use 0")
    sigma = float(np.sqrt(np.sum((np.asarray(logy) - fitted) ** 2) / dof))
    rng = np.random.default_rng(seed)
    out = []
    with single_thread_blas():
        for _ in range(n):
            y = fitted + sigma * rng.standard_normal(len(fitted))
            try:
                t, f = best_of(form, [theta], fitX, y, delta)
            except (FloatingPointError, ValueError, np.linalg.LinAlgError):
                continue
            if t is not None and np.isfinite(f):
                p = form.to_natural(t)
                out.append([float(p[k]) for k in lawobj.params])
    return np.array(out, dtype=float).reshape(-1, len(lawobj.params)), sigma


def _progress_bar(total: int, desc: str, progress):
    """tqdm on a terminal, plain log lines otherwise, nothing when progress is False."""
    if progress is False:
        return None
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False)
    return _LogProgress(total, desc)


class _LogProgress:
    def __init__(self, total, desc):
        self.total, self.desc, self.n, self.t0, self.next = total, desc, 0, time.monotonic(), 0.25

    def update(self, k):
        self.n += k
        if self.n >= self.next * self.total or self.n == self.total:
            log.info("%s: %d/%d (%.1fs)", self.desc, self.n, self.total, time.monotonic() - self.t0)
            self.next += 0.25

    def close(self):
        pass


def parallel_map(fn, chunks: list[tuple], n_jobs: int | None, desc: str = "bootstrap",
                 weights: list[int] | None = None, progress=None) -> list:
    """``[fn(*c) for c in chunks]`` over up to ``n_jobs`` processes (all cores when None),
    in order, with a progress bar counting ``weights`` (default one per chunk)."""
    weights = weights or [1] * len(chunks)
    n_jobs = n_jobs_for(n_jobs, len(chunks))
    bar = _progress_bar(sum(weights), desc, progress)
    results = [None] * len(chunks)
    try:
        if n_jobs <= 1:
            for i, c in enumerate(chunks):
                results[i] = fn(*c)
                if bar:
                    bar.update(weights[i])
        else:
            import multiprocessing as mp

            # fork where it exists: workers start at once and scripts without a __main__ guard
            # still work; the workers only run numpy/scipy, so inherited threads do not matter.
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as ex:
                futs = {ex.submit(fn, *c): i for i, c in enumerate(chunks)}
                for fut in as_completed(futs):
                    i = futs[fut]
                    results[i] = fut.result()
                    if bar:
                        bar.update(weights[i])
    finally:
        if bar:
            bar.close()
    return results


def n_jobs_for(n_jobs: int | None, n_tasks: int) -> int:
    if n_jobs is None or n_jobs <= 0:
        n_jobs = os.cpu_count() or 1
    return max(1, min(int(n_jobs), n_tasks))


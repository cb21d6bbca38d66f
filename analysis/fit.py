"""Fitting scaling laws to observed points: Chinchilla Approach 3, the over-training law,
Kaplan's forms, and bootstrap intervals for all of them.

The method is the one Hoffmann et al. 2022 (Sec. 3.3 and App. D.2) describe and
Besiroglu et al. 2024 reproduce: minimise the **sum** of Huber losses (delta = 1e-3) of
the log-loss residuals,

    sum_i Huber_delta( log L_hat(N_i, D_i) - log L_i ),

with L_hat written in log-sum-exp form, e.g. for Chinchilla

    log L_hat = LSE(a - alpha log N, b - beta log D, e),   A = e^a, B = e^b, E = e^e,

using L-BFGS from a grid of initialisations. A sum, not a mean: the two share their
minimiser, but only the sum keeps the curvature (and so any Hessian-based standard
error) tied to the amount of data. We reach the exhaustive grid's optimum much faster
by (1) evaluating the objective on the whole grid in one vectorised numpy call and
starting L-BFGS only from the best few grid points, and (2) giving L-BFGS the analytic
gradient. Bootstrap refits start from the full-data optimum plus the best few points of
a pruned grid, and run in parallel processes.

lmfit supplies bounds-aware asymptotic standard errors and correlations at the optimum
(Huber's asymptotic covariance, through least squares on his pseudo-observations). For a
Huber fit those are approximations; the bootstrap percentile interval is the honest one,
and the report says which was used.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import product
from typing import Callable

import numpy as np
import pandas as pd

from .errors import FitError, InputError, TableError
from .laws import get_law
from .result import (LawFit, bound_warnings, check_interval_args, correlation_warnings, interval_from_samples,
                     uncertainty_warnings)

__all__ = ["fit_law", "FIT_LAWS", "HUBER_DELTA", "EPOCH_GRID", "huber", "pick_kaplan_law",
           "frontier_points", "lower_envelope", "bootstrap_indices", "parallel_map", "choose_resample", "short_of_sizes",
           "SIZE_TERMS"]

log = logging.getLogger(__name__)

#: Huber threshold on log-loss residuals (Hoffmann et al. 2022, Sec. 3.3).
HUBER_DELTA = 1e-3
#: Positive scale constants, fitted through their logarithms.
_SCALE_PARAMS = frozenset({"E", "A", "B", "N_c", "D_c", "C_c"})
#: Laws :func:`fit_law` can fit.
FIT_LAWS = ("chinchilla", "gadre2024", "kaplan_nd", "kaplan_n", "kaplan_d", "kaplan_c")
#: Parameters of each law that only differences between model sizes determine. Holding N
#: fixed and varying D pins the D term and the loss floor at that size; the floor's own
#: parameters then need as many distinct sizes as there are of them: E + A/N^alpha
#: (Hoffmann et al. 2022, eq. 2) three; E + A/N^eta (Gadre et al. 2024, eta also set by
#: D) two; (N_c/N)^alpha_N (Kaplan et al. 2020, eqs. 1.1 and 1.5) two.
SIZE_TERMS = {"chinchilla": ("E", "A", "alpha"), "gadre2024": ("E", "A"), "kaplan_nd": ("N_c", "alpha_N"),
              "kaplan_n": ("N_c", "alpha_N")}


def huber(r, delta: float = HUBER_DELTA):
    """Huber loss: r^2/2 for |r| <= delta, delta (|r| - delta/2) beyond (Huber 1964)."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


# ---------------------------------------------------------------------- law forms
#
# A form is a law written in a well-conditioned internal parametrisation theta, with its
# log-prediction vectorised over many theta at once (for grid evaluation) and its
# Jacobian for one theta (for L-BFGS and the covariance).

@dataclass(frozen=True)
class _LSEForm:
    """log L_hat = LSE_k( theta[coef_k] - sum_j theta[exp_kj] * log x_kj ).

    Chinchilla, the over-training law and the saturating power law are sums of power
    terms and a constant, so their log is a log-sum-exp of affine functions of theta:
    exact, overflow-free, and with softmax weights as gradient.
    """

    law: str
    theta_names: tuple[str, ...]
    # per term: (index of its coefficient, ((index of exponent, input name), ...))
    terms: tuple[tuple[int, tuple[tuple[int, str], ...]], ...]
    inputs: tuple[str, ...]
    to_natural: Callable
    from_natural: Callable
    grid: Callable  # X -> (G, p) array of starting points
    bounds: tuple[tuple[float | None, float | None], ...]

    def logpred(self, theta, X):
        theta = np.atleast_2d(theta)
        T = []
        for coef, exps in self.terms:
            t = np.repeat(theta[:, coef:coef + 1], X[self.inputs[0]].shape[0], axis=1)
            for ei, name in exps:
                t = t - theta[:, ei:ei + 1] * X[name][None, :]
            T.append(t)
        out = T[0]
        for t in T[1:]:
            out = np.logaddexp(out, t)
        return out

    def logpred_jac(self, theta, X):
        n = X[self.inputs[0]].shape[0]
        T = np.empty((len(self.terms), n))
        for k, (coef, exps) in enumerate(self.terms):
            t = np.full(n, theta[coef])
            for ei, name in exps:
                t -= theta[ei] * X[name]
            T[k] = t
        m = T.max(axis=0)
        w = np.exp(T - m)
        s = w.sum(axis=0)
        pred = m + np.log(s)
        w /= s
        J = np.zeros((n, len(theta)))
        for k, (coef, exps) in enumerate(self.terms):
            J[:, coef] += w[k]
            for ei, name in exps:
                J[:, ei] -= w[k] * X[name]
        return pred, J

    def centered(self, theta, X):
        """theta with each term's coefficient replaced by the term's value at the data's
        mean log inputs: the coordinates in which identifiability is judged."""
        theta = np.asarray(theta, dtype=float).copy()
        for coef, exps in self.terms:
            for ei, name in exps:
                theta[coef] -= theta[ei] * float(np.mean(X[name]))
        return theta


@dataclass(frozen=True)
class _KaplanNDForm:
    """Kaplan et al. 2020 eq. (1.5) in logs: log L = alpha_D * LSE(p (u - x), v - y),
    p = alpha_N / alpha_D, u = log N_c, v = log D_c, x = log N, y = log D."""

    law: str = "kaplan_nd"
    theta_names: tuple[str, ...] = ("log_N_c", "log_D_c", "alpha_N", "alpha_D")
    inputs: tuple[str, ...] = ("x", "y")
    bounds: tuple = ((None, None), (None, None), (1e-4, 2.0), (1e-4, 2.0))

    @staticmethod
    def to_natural(t):
        return {"N_c": math.exp(t[0]), "D_c": math.exp(t[1]), "alpha_N": t[2], "alpha_D": t[3]}

    @staticmethod
    def from_natural(p):
        return np.array([math.log(p["N_c"]), math.log(p["D_c"]), p["alpha_N"], p["alpha_D"]])

    @staticmethod
    def grid(X):
        # log N_c - log N = log(L)/alpha_N: with L of a few nats and exponents 0.03..0.5,
        # log N_c lies some 2..50 above the data's log N.
        xm, ym = float(np.mean(X["x"])), float(np.mean(X["y"]))
        offs = np.array([2.0, 6.0, 15.0, 40.0])
        exps = np.array([0.03, 0.08, 0.2, 0.5])
        return np.array([(xm + du, ym + dv, an, ad) for du, dv, an, ad in product(offs, offs, exps, exps)])

    def logpred(self, theta, X):
        theta = np.atleast_2d(theta)
        u, v, an, ad = (theta[:, i:i + 1] for i in range(4))
        t1 = an / ad * (u - X["x"][None, :])
        t2 = v - X["y"][None, :]
        return ad * np.logaddexp(t1, t2)

    def logpred_jac(self, theta, X):
        u, v, an, ad = theta
        p = an / ad
        t1 = p * (u - X["x"])
        t2 = v - X["y"]
        s = np.logaddexp(t1, t2)
        w1 = np.exp(t1 - s)
        w2 = 1.0 - w1
        J = np.empty((len(t1), 4))
        J[:, 0] = an * w1
        J[:, 1] = ad * w2
        J[:, 2] = w1 * (u - X["x"])
        J[:, 3] = s - w1 * p * (u - X["x"])
        return ad * s, J

    def centered(self, theta, X):
        # log of each term's contribution at the data's centre, (N_c/N)^alpha_N and (D_c/D)^alpha_D
        u, v, an, ad = theta
        return np.array([an * (u - np.mean(X["x"])), ad * (v - np.mean(X["y"])), an, ad])


def _epoch_grid() -> np.ndarray:
    """The 4,500-point initialisation grid of Besiroglu et al. 2024 (their data_analysis
    notebook) in (e, a, b, alpha, beta) order: alpha, beta in {0, 0.5, ..., 2},
    e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}."""
    alpha = beta = np.arange(0.0, 2.01, 0.5)
    e = np.arange(-1.0, 1.01, 0.5)
    a = b = np.arange(0.0, 25.1, 5.0)
    return np.array([(ee, aa, bb, al, be) for al, be, ee, aa, bb in product(alpha, beta, e, a, b)])


#: (e, a, b, alpha, beta) rows of the replication's grid (4,500 points).
EPOCH_GRID = _epoch_grid()


def _gadre_grid(X) -> np.ndarray:
    e = np.arange(-1.0, 1.01, 0.5)
    a = b = np.arange(0.0, 25.1, 5.0)
    eta = np.array([0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0])
    return np.array([(ee, aa, bb, et) for ee, aa, bb, et in product(e, a, b, eta)])


def _single_power_grid(name):
    def grid(X):
        # log L = k - alpha * log X: start from the least-squares line and a few exponents.
        x = X[name]
        y = X["_logy"]
        slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(np.mean(y)))
        rows = [(intercept, max(-slope, 1e-3))]
        for al in (0.02, 0.05, 0.1, 0.3, 0.7):
            rows.append((float(np.mean(y)) + al * float(np.mean(x)), al))
        return np.array(rows)
    return grid


def _single_power_form(law: str, inp: str, scale_name: str, exp_name: str) -> _LSEForm:
    # (C_x / X)^alpha = exp(k - alpha log X) with k = alpha log C_x: affine in (k, alpha),
    # so the Huber objective is convex and has one optimum.
    def to_nat(t):
        k, al = float(t[0]), float(t[1])
        # A loss that barely falls drives alpha to 0 and the scale past float range;
        # report that as inf (fit_law then refuses the fit by name) rather than overflow.
        ratio = k / al if al > 0 else math.inf
        return {scale_name: math.exp(ratio) if ratio < 700 else math.inf, exp_name: al}

    def from_nat(p):
        return np.array([p[exp_name] * math.log(p[scale_name]), p[exp_name]])

    return _LSEForm(law, ("k", exp_name), ((0, ((1, inp),)),), (inp,), to_nat, from_nat,
                    _single_power_grid(inp), ((None, None), (1e-6, 2.0)))


_FORMS = {
    "chinchilla": _LSEForm(
        "chinchilla", ("e", "a", "b", "alpha", "beta"),
        ((1, ((3, "x"),)), (2, ((4, "y"),)), (0, ())), ("x", "y"),
        lambda t: {"E": math.exp(t[0]), "A": math.exp(t[1]), "B": math.exp(t[2]),
                   "alpha": float(t[3]), "beta": float(t[4])},
        lambda p: np.array([math.log(p["E"]), math.log(p["A"]), math.log(p["B"]), p["alpha"], p["beta"]]),
        lambda X: EPOCH_GRID,
        ((None, math.log(10.0)), (None, None), (None, None), (0.0, 2.5), (0.0, 2.5)),
    ),
    "gadre2024": _LSEForm(
        "gadre2024", ("e", "a", "b", "eta"),
        ((1, ((3, "x"),)), (2, ((3, "y"),)), (0, ())), ("x", "y"),
        lambda t: {"E": math.exp(t[0]), "A": math.exp(t[1]), "B": math.exp(t[2]), "eta": float(t[3])},
        lambda p: np.array([math.log(p["E"]), math.log(p["A"]), math.log(p["B"]), p["eta"]]),
        _gadre_grid,
        ((None, math.log(10.0)), (None, None), (None, None), (0.0, 2.5)),
    ),
    "kaplan_n": _single_power_form("kaplan_n", "x", "N_c", "alpha_N"),
    "kaplan_d": _single_power_form("kaplan_d", "y", "D_c", "alpha_D"),
    "kaplan_c": _single_power_form("kaplan_c", "c", "C_c", "alpha_C"),
    "kaplan_nd": _KaplanNDForm(),
    "saturating_power": _LSEForm(
        "saturating_power", ("e", "b", "beta"),
        ((1, ((2, "y"),)), (0, ())), ("y",),
        lambda t: {"E": math.exp(t[0]), "B": math.exp(t[1]), "beta": float(t[2])},
        lambda p: np.array([math.log(p["E"]), math.log(p["B"]), p["beta"]]),
        lambda X: np.array(list(product(np.arange(-1.0, 1.51, 0.5), np.arange(0.0, 25.1, 2.5),
                                        [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5]))),
        ((None, math.log(10.0)), (None, None), (0.0, 2.5)),
    ),
}


def get_form(law: str):
    """The internal form of a fittable law (InputError for others)."""
    try:
        return _FORMS[law]
    except KeyError:
        raise InputError(f"law {law!r} cannot be fitted to points", field="law",
                         fix="use one of " + ", ".join(FIT_LAWS)) from None


# ---------------------------------------------------------------------- objective

def grid_objective(form, thetas: np.ndarray, X: dict, logy: np.ndarray, delta: float = HUBER_DELTA,
                   max_cells: int = 2_000_000) -> np.ndarray:
    """Sum of Huber losses for every row of ``thetas`` at once (chunked to bound memory)."""
    thetas = np.atleast_2d(thetas)
    out = np.empty(len(thetas))
    step = max(1, max_cells // max(1, len(logy)))
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, len(thetas), step):
            r = form.logpred(thetas[i:i + step], X) - logy[None, :]
            out[i:i + step] = huber(r, delta).sum(axis=1)
    out[~np.isfinite(out)] = np.inf
    return out


def _value_and_grad(theta, form, X, logy, delta, scale):
    # Scaled by 1/delta so that L-BFGS's absolute gradient tolerance means the same
    # thing whatever delta is; the minimiser is unchanged.
    with np.errstate(over="ignore", invalid="ignore"):
        pred, J = form.logpred_jac(theta, X)
    r = pred - logy
    if not np.all(np.isfinite(r)):
        return np.inf, np.zeros_like(theta)
    f = huber(r, delta).sum()
    # einsum, not a BLAS matvec: tiny products gain nothing from BLAS threads, and
    # parallel bootstrap workers would fight over them.
    g = np.einsum("ij,i->j", J, np.clip(r, -delta, delta))
    return f * scale, g * scale


def _lbfgs(form, theta0, X, logy, delta, maxiter=2000):
    from scipy.optimize import minimize

    lo = np.array([-np.inf if b[0] is None else b[0] for b in form.bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in form.bounds])
    x0 = np.clip(np.asarray(theta0, dtype=float), lo, hi)
    res = minimize(_value_and_grad, x0, args=(form, X, logy, delta, 1.0 / delta), jac=True,
                   method="L-BFGS-B", bounds=list(form.bounds),
                   options={"maxiter": maxiter, "ftol": 1e-13, "gtol": 1e-9, "maxcor": 20})
    return res.x, res.fun * delta, res


def _best_of(form, starts, X, logy, delta, ends: list | None = None):
    """Best L-BFGS end point over ``starts``; every end point is appended to ``ends``."""
    best_theta, best_f = None, np.inf
    for s in starts:
        theta, f, _ = _lbfgs(form, s, X, logy, delta)
        if ends is not None and np.isfinite(f):
            ends.append((f, theta))
        if f < best_f:
            best_theta, best_f = theta, f
    return best_theta, best_f


def _distinct_optima(ends: list, limit: int = 3, tol: float = 1e-3) -> list[np.ndarray]:
    """Distinct L-BFGS end points, best first: different local optima make better warm
    starts for bootstrap refits than any grid point."""
    out: list[np.ndarray] = []
    for _, theta in sorted(ends, key=lambda e: e[0]):
        if all(np.max(np.abs(theta - o) / (1.0 + np.abs(o))) > tol for o in out):
            out.append(theta)
        if len(out) == limit:
            break
    return out


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(values))
    idx = np.argpartition(values, k - 1)[:k]
    return idx[np.argsort(values[idx])]


# ---------------------------------------------------------------------- data preparation

def _design(points: pd.DataFrame, law: str, nonembedding: bool | None):
    """Log inputs the form needs, plus a description of what was used."""
    notes = []
    n_col = "params"
    if law.startswith("kaplan") and law != "kaplan_c":
        has_ne = "params_nonembedding" in points.columns and points["params_nonembedding"].notna().all()
        if nonembedding is None:
            nonembedding = has_ne
        if nonembedding and not has_ne:
            raise TableError("non-embedding parameter counts requested but the table has none",
                             field="params_nonembedding", fix="add the column or pass nonembedding=False")
        if nonembedding:
            n_col = "params_nonembedding"
            notes.append("N is the non-embedding parameter count (Kaplan et al. 2020)")
        else:
            notes.append("N is the total parameter count (no non-embedding counts in the table); "
                         "Kaplan et al. 2020 use non-embedding parameters")
    X = {"x": np.log(points[n_col].to_numpy(float)), "y": np.log(points["tokens"].to_numpy(float))}
    if "flops" in points.columns:
        X["c"] = np.log(points["flops"].to_numpy(float))
    return X, n_col, notes


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


def _select_points(points: pd.DataFrame, law: str, frontier: bool) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    if law == "kaplan_c":
        if frontier:
            sel = frontier_points(points)
            notes.append(f"L(C_min) fitted to the {len(sel)} compute-efficient frontier points "
                         f"of {len(points)} (Kaplan et al. 2020, Sec. 6.1)")
            return sel, notes
        return points, notes
    if law == "kaplan_n" and _distinct(points["tokens"]) > 1:
        # L(N) describes models trained to convergence: keep each size's best point.
        sel = points.loc[points.groupby(_rounded(points["params"]))["loss"].idxmin()]
        notes.append(f"L(N) fitted to each model size's lowest loss ({len(sel)} of {len(points)} points): "
                     "Kaplan et al. 2020 fit it to converged models")
        return sel, notes
    if law == "kaplan_d" and _distinct(points["params"]) > 1:
        sel = points.loc[points.groupby(_rounded(points["tokens"]))["loss"].idxmin()]
        notes.append(f"L(D) fitted to each token budget's lowest loss ({len(sel)} of {len(points)} points): "
                     "Kaplan et al. 2020 fit it to large models early-stopped on D tokens")
        return sel, notes
    return points, notes


def _rounded(s: pd.Series) -> pd.Series:
    return np.round(np.log(s.to_numpy(float)), 3)


def _distinct(s) -> int:
    from .data import _n_distinct

    return _n_distinct(s)


def _check_design(points: pd.DataFrame, law: str, n_params: int) -> list[str]:
    """Errors for fits that cannot be done, warnings for fits the data barely support."""
    warn = []
    n = len(points)
    sizes, budgets = _distinct(points["params"]), _distinct(points["tokens"])
    needs = {"chinchilla": ("params", "tokens"), "gadre2024": ("params", "tokens"),
             "kaplan_nd": ("params", "tokens"), "kaplan_n": ("params",), "kaplan_d": ("tokens",),
             "kaplan_c": ("flops",)}[law]
    counts = {"params": sizes, "tokens": budgets, "flops": _distinct(points["flops"]) if "flops" in points else 0}
    words = {"params": ("model size", "model sizes"), "tokens": ("token budget", "token budgets"),
             "flops": ("compute budget", "compute budgets")}
    for col in needs:
        if counts[col] < 2:
            one, many = words[col]
            raise TableError(f"only one distinct {one} in the table; {law} has a term in {col} that "
                             f"one {one} cannot determine", field=col,
                             fix=f"add runs at 3 or more {many}, or fit a law without that term")
        if counts[col] < 3:
            warn.append(f"only {counts[col]} distinct {words[col][1]}: {law} is barely determined "
                        f"(3 or more are needed to check the power law's shape)")
    if n <= n_params:
        raise TableError(f"{n} points cannot determine the {n_params} parameters of {law}", field="rows",
                         fix=f"give more than {n_params} points")
    if n < 3 * n_params:
        warn.append(f"only {n} points for {n_params} parameters: intervals will be wide")
    return warn


# ---------------------------------------------------------------------- bootstrap

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


def choose_resample(df: pd.DataFrame, law: str, n_col: str, resample: str, level: float):
    """What the bootstrap draws: (groups for :func:`bootstrap_indices` or None, unit, note, warning).

    Whole runs when the table has runs of several points (their points share the run's
    training noise, so resampling them one by one understates the uncertainty), unless
    too many resamples of whole runs would hold fewer distinct model sizes than the law's
    size term needs (:data:`SIZE_TERMS`): a refit on such a resample cannot determine
    those parameters, and when more of them than the (1 - level)/2 share that decides each
    end of a percentile interval come out, they set the interval's ends. With one run per
    size that happens often (4 sizes: 34% of resamples hold fewer than 3), so ``"auto"``
    then resamples points and says why in ``note``; ``"runs"`` keeps runs and warns.
    """
    has_runs = "run" in df.columns and df["run"].nunique() < len(df)
    if resample == "runs" and "run" not in df.columns:
        raise InputError("resample='runs' needs a run column", field="resample", fix="use 'points'")
    if not has_runs:
        return None, "points", "", ""
    groups = df["run"].to_numpy()
    terms = SIZE_TERMS.get(law, ())
    run_size = df.groupby("run")[n_col].first()
    labels = np.round(np.log(run_size.to_numpy(float)), 3)
    share = short_of_sizes(labels, len(terms)) if terms else 0.0
    per_size = np.unique(np.unique(labels, return_counts=True)[1])
    runs = f"{len(run_size)} runs, " + (f"{per_size[0]} per model size" if len(per_size) == 1
                                        else f"{per_size[0]} to {per_size[-1]} per model size")
    tail = (1 - level) / 2
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


def single_thread_blas():
    """Context manager limiting BLAS to one thread. L-BFGS-B and the objective call BLAS
    on vectors of a few hundred entries, where a thread pool costs far more than it gives
    (about 10x on two cores) and parallel workers would oversubscribe the machine."""
    # threadpoolctl limits only libraries already loaded: load scipy's BLAS first.
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional at run time; only speed depends on it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _refit_chunk(law, X, logy, index_sets, warm, pool, n_grid_starts, delta):
    with single_thread_blas():
        return _refit_chunk_inner(law, X, logy, index_sets, warm, pool, n_grid_starts, delta)


def _refit_chunk_inner(law, X, logy, index_sets, warm, pool, n_grid_starts, delta):
    """Refit on each resample: start from the full-data optimum (and any other local
    optimum the full fit found) and from the best few points of the pruned grid evaluated
    on the resample. Failed refits give NaN rows."""
    form = _FORMS[law]
    out = np.full((len(index_sets), len(warm[0])), np.nan)
    for i, idx in enumerate(index_sets):
        Xi = {k: v[idx] for k, v in X.items()}
        yi = logy[idx]
        starts = list(warm)
        if n_grid_starts and len(pool):
            vals = grid_objective(form, pool, Xi, yi, delta)
            starts += list(pool[_top_k(vals, n_grid_starts)])
        try:
            theta, f = _best_of(form, starts, Xi, yi, delta)
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            continue
        if theta is not None and np.isfinite(f):
            out[i] = theta
    return out


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
    n_jobs = _n_jobs(n_jobs, len(chunks))
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


def _n_jobs(n_jobs: int | None, n_tasks: int) -> int:
    if n_jobs is None or n_jobs <= 0:
        n_jobs = os.cpu_count() or 1
    return max(1, min(int(n_jobs), n_tasks))


# ---------------------------------------------------------------------- the fit

@dataclass
class Solution:
    """The optimum of one robust fit, with what produced it."""

    theta: np.ndarray
    objective: float
    params: dict
    stderr: dict
    correl: dict
    cent_correl: dict
    cov_note: str | None
    ends: list
    grid: np.ndarray
    gvals: np.ndarray
    order: np.ndarray
    seconds: float


def solve_form(law: str, X: dict, logy: np.ndarray, delta: float = HUBER_DELTA, n_starts: int = 8,
               grid=None) -> Solution:
    """Minimise the summed Huber loss of log residuals for ``law`` on log inputs ``X``
    (keys x = log N, y = log D, c = log C): the whole grid is scored in one vectorised
    call, L-BFGS-B (analytic gradient) runs from the ``n_starts`` best grid points, and
    lmfit supplies Huber's asymptotic standard errors at the optimum."""
    form = get_form(law)
    names = get_law(law).params
    fitX = {k: X[k] for k in form.inputs}
    t0 = time.perf_counter()
    grid = np.atleast_2d(np.asarray(grid, dtype=float)) if grid is not None else form.grid({**X, "_logy": logy})
    gvals = grid_objective(form, grid, fitX, logy, delta)
    if not np.any(np.isfinite(gvals)):
        raise FitError(f"the objective is not finite anywhere on the {len(grid)}-point grid", field="grid",
                       fix="check that losses are in nats (a few units), not e.g. percent")
    order = _top_k(gvals, n_starts)
    ends: list = []
    with single_thread_blas():
        theta, fbest = _best_of(form, grid[order], fitX, logy, delta, ends)
        if theta is None or not np.isfinite(fbest):
            raise FitError(f"L-BFGS failed from every start for {law}", field="law")
        seconds = time.perf_counter() - t0
        stderr, correl, cent, note = _asymptotic_uncertainty(form, theta, fitX, logy, delta, names)
    return Solution(theta, float(fbest), form.to_natural(theta), stderr, correl, cent, note, ends, grid, gvals,
                    order, seconds)



def fit_law(points, law: str = "chinchilla", bootstrap: int = 0, seed: int = 0, n_jobs: int | None = None,
            level: float = 0.90, **options) -> LawFit:
    """Fit ``law`` to observed points and return a :class:`~analysis.result.LawFit`.

    ``points`` is anything :func:`analysis.data.load_points` accepts (a DataFrame with
    ``params``, ``tokens``, ``loss`` columns, a table file, or a sweep directory).
    ``law`` is one of :data:`FIT_LAWS`. With ``bootstrap`` > 0 the fit is repeated on that
    many resamples (whole runs when the table has a ``run`` column with more than one point
    per run and enough runs per model size, single points otherwise, with a note saying
    why: :func:`choose_resample`) across ``n_jobs`` processes; the draws are kept in
    ``.samples`` and give percentile intervals at ``level`` for every parameter and,
    through ``predict_interval`` and :mod:`analysis.allocation`, for every derived quantity.

    Options: ``delta`` (Huber threshold, default 1e-3), ``n_starts`` (L-BFGS starts taken
    from the grid, default 8), ``grid`` (custom initialisation grid in the internal
    parametrisation), ``bootstrap_starts`` (grid starts per refit besides the warm start,
    default 1), ``resample`` ("auto", "runs" or "points"), ``nonembedding`` (Kaplan laws:
    use ``params_nonembedding`` as N; default when the column exists), ``frontier``
    (kaplan_c: fit the compute-efficient frontier only; default True), ``progress``
    (None: a bar on a terminal, log lines otherwise; False: silent).
    """
    from .data import describe_points, load_points, table_notes

    delta = float(options.pop("delta", HUBER_DELTA))
    n_starts = int(options.pop("n_starts", 8))
    custom_grid = options.pop("grid", None)
    bootstrap_starts = int(options.pop("bootstrap_starts", 1))
    resample = options.pop("resample", "auto")
    nonembedding = options.pop("nonembedding", None)
    frontier = bool(options.pop("frontier", True))
    progress = options.pop("progress", None)
    if options:
        raise InputError(f"unknown option(s) {', '.join(sorted(options))}", field="options",
                         fix="see help(analysis.fit.fit_law)")
    check_interval_args(level, bootstrap)
    if resample not in ("auto", "runs", "points"):
        raise InputError(f"unknown resample {resample!r}", field="resample", fix="auto, runs or points")
    form = get_form(law)
    lawobj = get_law(law)

    df = points if isinstance(points, pd.DataFrame) and "params" in points.columns else load_points(points)
    if isinstance(points, pd.DataFrame) and "flops" not in df.columns:
        df = df.assign(flops=6.0 * df["params"] * df["tokens"])
    _check_finite(df)
    notes = table_notes(df)
    df, sel_notes = _select_points(df, law, frontier)
    notes += sel_notes
    X, n_col, design_notes = _design(df, law, nonembedding)
    notes += design_notes
    warn = _check_design(df, law, len(form.theta_names))
    logy = np.log(df["loss"].to_numpy(float))
    fitX = {k: X[k] for k in form.inputs}

    sol = solve_form(law, X, logy, delta=delta, n_starts=n_starts, grid=custom_grid)
    theta, fbest, ends, grid, gvals, order = sol.theta, sol.objective, sol.ends, sol.grid, sol.gvals, sol.order
    params, stderr, correl, cent_correl, cov_note = sol.params, sol.stderr, sol.correl, sol.cent_correl, sol.cov_note
    fit_seconds = sol.seconds

    _check_fitted(law, params, df, n_col)

    info = describe_points(df)
    if n_col == "params_nonembedding":
        info["data_range"]["N"] = (float(df[n_col].min()), float(df[n_col].max()))
    used_inputs = {"kaplan_n": ("N",), "kaplan_d": ("D",), "kaplan_c": ("C",)}.get(law, ("N", "D"))
    data_range = {k: v for k, v in info["data_range"].items() if k in used_inputs and v is not None}

    warn += fit_warnings(params, stderr, cent_correl, lawobj.bounds)
    if cov_note:
        warn.append(cov_note)

    samples, ci, ci_method, boot_meta = None, {}, "asymptotic", {}
    if bootstrap:
        groups, _, resample_note, resample_warning = choose_resample(df, law, n_col, resample, level)
        if resample_note:
            notes.append(resample_note)
        if resample_warning:
            warn.append(resample_warning)
        # Pruned grid for refits: the grid points that did best on the full data.
        pool = grid[_top_k(gvals, min(len(grid), 64))]
        idx_sets = bootstrap_indices(len(df), bootstrap, groups, seed)
        jobs = _n_jobs(n_jobs, bootstrap)
        n_chunks = min(bootstrap, max(1, 4 * jobs))
        bounds_ = np.linspace(0, bootstrap, n_chunks + 1).astype(int)
        warm = _distinct_optima(ends)
        chunks = [(law, fitX, logy, idx_sets[a:b], warm, pool, bootstrap_starts, delta)
                  for a, b in zip(bounds_[:-1], bounds_[1:]) if b > a]
        tb = time.perf_counter()
        parts = parallel_map(_refit_chunk, chunks, jobs, desc=f"bootstrap {law}",
                             weights=[len(c[3]) for c in chunks], progress=progress)
        thetas = np.vstack(parts)
        ok = np.all(np.isfinite(thetas), axis=1)
        nat = np.full((len(thetas), len(lawobj.params)), np.nan)
        for i in np.flatnonzero(ok):
            d = form.to_natural(thetas[i])
            nat[i] = [d[p] for p in lawobj.params]
        samples = nat
        lo, hi = interval_from_samples(nat, level)
        ci = {p: (float(lo[j]), float(hi[j])) for j, p in enumerate(lawobj.params)}
        ci_method = "bootstrap"
        n_failed = int((~ok).sum())
        boot_meta = {"n": bootstrap, "failed": n_failed, "unit": "runs" if groups is not None else "points",
                     "seconds": round(time.perf_counter() - tb, 3), "n_jobs": jobs, "seed": seed}
        if n_failed:
            warn.append(f"{n_failed} of {bootstrap} bootstrap refits failed and were left out")
    else:
        ci = asymptotic_ci(params, stderr, level)

    grid_desc = "custom grid" if custom_grid is not None else (
        "the 4,500-point grid of Besiroglu et al. 2024" if law == "chinchilla" else f"a {len(grid)}-point grid")
    method = (f"Huber (delta={delta:g}) on log loss, summed; L-BFGS-B with analytic gradient from the "
              f"{len(order)} best of {grid_desc}")
    if bootstrap:
        method += f"; {bootstrap} bootstrap refits resampling {boot_meta['unit']}"
    meta = {"huber_delta": delta, "grid_size": int(len(grid)), "starts": int(len(order)),
            "fit_seconds": round(fit_seconds, 4), "ci_method": ci_method, "notes": notes,
            "n_column": n_col, "theta": [float(t) for t in theta], "theta_names": list(form.theta_names),
            "correl_centered": cent_correl,
            "stderr_method": "asymptotic (Huber 1981 M-estimator covariance via lmfit on pseudo-observations); "
                             "indicative only for a Huber fit, the bootstrap interval is the honest one"}
    if boot_meta:
        meta["bootstrap"] = boot_meta
    if n_col == "params_nonembedding":
        meta["inputs"] = {"N": "params_nonembedding"}
    return LawFit(law=law, params=params, ci=ci, ci_level=level, stderr=stderr, correl=correl, samples=samples,
                  n_points=info["n_points"], n_sizes=_distinct(df[n_col]), n_budgets=info["n_budgets"],
                  data_range=data_range, method=method, objective=float(fbest), warnings=warn, source="fit",
                  meta=meta)


def _check_fitted(law: str, params: dict, df: pd.DataFrame, n_col: str) -> None:
    """Refuse an optimum that is no law at all: non-finite parameters, or predictions that
    overflow or underflow to zero at the data. It happens to the pure power laws of Kaplan et al. 2020 when the
    loss does not fall with the input: the exponent runs to 0 and the scale to infinity."""
    lawobj = get_law(law)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        finite_params = all(math.isfinite(v) for v in params.values())
        pred = lawobj.evaluate(params, N=df[n_col].to_numpy(float), D=df["tokens"].to_numpy(float),
                               C=df["flops"].to_numpy(float) if "flops" in df.columns else None) \
            if finite_params else np.array([np.nan])
    if finite_params and np.all(np.isfinite(pred)) and np.all(pred > 0):
        return
    inputs = {"N": "model size", "D": "tokens", "C": "compute"}
    falls = " and ".join(inputs[i] for i in lawobj.inputs)
    shown = ", ".join(f"{k}={v:.3g}" for k, v in params.items())
    raise FitError(f"{law} has no finite fit to these points ({shown}): the loss does not fall "
                   f"as a power of {falls}", field="loss",
                   fix="check that loss falls with model size and tokens, or fit a law with a floor "
                       "(--law chinchilla)")


def _check_finite(df: pd.DataFrame) -> None:
    for col in ("params", "tokens", "loss"):
        if col not in df.columns:
            raise TableError(f"missing column {col}", field=col, fix="load the table with analysis.data.load_points")
        v = df[col].to_numpy(float)
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise TableError(f"{col} has missing, non-finite or non-positive values", field=col,
                             fix="load the table with analysis.data.load_points(..., policy='omit') to drop them")


def fit_warnings(params: dict, stderr: dict, centred_correl: dict, bounds: dict) -> list[str]:
    """Bound hits, unidentifiable pairs and poorly determined parameters (a parameter at a
    bound is reported once, as such)."""
    at_bound = bound_warnings(params, bounds)
    hit = {w.split()[1] for w in at_bound}
    rest = {p: v for p, v in params.items() if p not in hit}
    return at_bound + correlation_warnings(centred_correl) + uncertainty_warnings(rest, stderr)


def asymptotic_ci(params: dict, stderr: dict, level: float) -> dict:
    """Normal intervals from standard errors; log-symmetric (never below zero) for the
    positive scale constants, which are fitted through their logarithms."""
    z = _normal_quantile(0.5 + level / 2)
    ci = {}
    for p, v in params.items():
        se = stderr.get(p)
        if se is None or not math.isfinite(se):
            continue
        if p in _SCALE_PARAMS and v > 0:
            with np.errstate(over="ignore"):
                ci[p] = (float(v * np.exp(-z * se / v)), float(v * np.exp(z * se / v)))
        else:
            ci[p] = (v - z * se, v + z * se)
    return ci


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def _smoothed_inlier_rate(r: np.ndarray, delta: float) -> tuple[float, float]:
    """Mean and variance of psi'(r) = 1{|r| <= delta}, smoothed with a Gaussian kernel
    (Silverman bandwidth on the robust scale of r): with delta = 1e-3 only a handful of
    residuals fall inside delta, too few to count."""
    from scipy.stats import norm

    scale = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    h = 1.06 * max(scale, delta) * len(r) ** (-0.2)
    d = norm.cdf((delta - r) / h) - norm.cdf((-delta - r) / h)
    return float(d.mean()), float(d.var())


def _asymptotic_uncertainty(form, theta, X, logy, delta, names):
    """Standard errors and correlations of the natural parameters, plus correlations in
    centred coordinates: Huber's asymptotic covariance, computed by lmfit.

    The covariance of a Huber M-estimate is (Huber 1981, Robust Statistics, Sec. 7.6)

        K^2 * [sum psi(r)^2 / (n - p)] / m^2 * (J^T J)^-1,   m = mean psi'(r),
        K = 1 + (p / n) Var(psi') / m^2.

    Least squares on Huber's pseudo-observations y* = log L_hat - psi(r) / m (Sec. 7.7)
    has, at the same optimum, exactly that covariance without K^2; lmfit fits them within
    the law's bounds and returns it. (lmfit's own covariance for a robust ``least_squares``
    fit is not used: it mixes robustly reweighted Jacobians with an unweighted chi-square
    and at delta = 1e-3 overstates standard errors several-fold.)
    """
    import lmfit

    stderr = {p: None for p in names}
    theta = np.asarray(theta, float)
    pred, J = form.logpred_jac(theta, X)
    r = pred - logy
    n, k = J.shape
    m, v = _smoothed_inlier_rate(r, delta)
    singular = ("the covariance matrix is singular: some parameters are not identifiable from these data "
                "(see the bootstrap intervals)")
    if n <= k or m <= 0:
        return stderr, {}, {}, singular
    ystar = pred - np.clip(r, -delta, delta) / m
    lo = [-np.inf if b[0] is None else b[0] for b in form.bounds]
    hi = [np.inf if b[1] is None else b[1] for b in form.bounds]
    pars = lmfit.Parameters()
    for i, nm in enumerate(form.theta_names):
        span = 1e-9 * max(1.0, abs(theta[i]))  # least_squares needs a start strictly inside the box
        pars.add(nm, value=float(np.clip(theta[i], lo[i] + span, hi[i] - span)), min=lo[i], max=hi[i])

    def vec(p):
        return np.array([p[nm].value for nm in form.theta_names])

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = lmfit.minimize(lambda p: form.logpred(vec(p), X)[0] - ystar, pars, method="least_squares",
                                 jac=lambda p: form.logpred_jac(vec(p), X)[1], max_nfev=100)
    except Exception as e:  # lmfit raises a variety of errors on degenerate problems
        return stderr, {}, {}, f"standard errors unavailable ({type(e).__name__}: {e})"
    cov = getattr(res, "covar", None)
    if cov is None or not np.all(np.isfinite(cov)) or len(res.var_names) != k:
        return stderr, {}, {}, singular
    K = 1.0 + (k / n) * v / m ** 2
    cov = K * K * np.asarray(cov)
    H = _numeric_jacobian(lambda t: np.array([form.to_natural(t)[p] for p in names]), theta)
    cov_nat = H @ cov @ H.T
    Hc = _numeric_jacobian(lambda t: form.centered(t, X), theta)
    cov_c = Hc @ cov @ Hc.T
    sd = np.sqrt(np.clip(np.diag(cov_nat), 0, None))
    stderr = {p: float(sd[i]) for i, p in enumerate(names)}
    correl = _correl_dict(cov_nat, names)
    # centred coordinates are ordered like theta; name them by the natural parameter they carry
    cent = _correl_dict(cov_c, _theta_to_natural_names(form, names))
    return stderr, correl, cent, None


def _theta_to_natural_names(form, names):
    mapping = {"e": "E", "a": "A", "b": "B", "k": None, "log_N_c": "N_c", "log_D_c": "D_c"}
    out = []
    for i, t in enumerate(form.theta_names):
        nm = mapping.get(t, t)
        if nm is None:  # single power laws: k carries the scale constant
            nm = [p for p in names if p not in form.theta_names][0]
        out.append(nm)
    return out


def _correl_dict(cov, names):
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    out = {}
    for i, p in enumerate(names):
        out[p] = {}
        for j, q in enumerate(names):
            if i != j and sd[i] > 0 and sd[j] > 0:
                out[p][q] = float(np.clip(cov[i, j] / (sd[i] * sd[j]), -1, 1))
    return out


def _numeric_jacobian(fn, x, h=1e-6):
    x = np.asarray(x, dtype=float)
    f0 = np.asarray(fn(x), dtype=float)
    J = np.empty((len(f0), len(x)))
    for j in range(len(x)):
        step = h * max(1.0, abs(x[j]))
        xp, xm = x.copy(), x.copy()
        xp[j] += step
        xm[j] -= step
        J[:, j] = (np.asarray(fn(xp)) - np.asarray(fn(xm))) / (2 * step)
    return J


# ---------------------------------------------------------------------- choosing a Kaplan form

def pick_kaplan_law(points: pd.DataFrame) -> str:
    """The Kaplan form the data support: the joint L(N, D) when both N and D vary,
    L(N) with one token budget, L(D) with one model size."""
    sizes, budgets = _distinct(points["params"]), _distinct(points["tokens"])
    if sizes >= 2 and budgets >= 2:
        return "kaplan_nd"
    if sizes >= 2:
        return "kaplan_n"
    if budgets >= 2:
        return "kaplan_d"
    raise TableError("one model size and one token budget: no Kaplan law can be fitted", field="rows",
                     fix="add runs at several sizes or budgets")

"""The robust optimiser every scaling-law fit uses.

Hoffmann et al. 2022 (Sec. 3.3 and App. D.2), reproduced by Besiroglu et al. 2024,
minimise the **sum** of Huber losses (delta = 1e-3) of log-loss residuals,

    sum_i Huber_delta( log L_hat(N_i, D_i) - log L_i ),

with L-BFGS from a grid of initialisations. A sum, not a mean: the two share their
minimiser, but only the sum keeps the curvature (and so any Hessian-based standard
error) tied to the amount of data. We reach the exhaustive grid's optimum much faster by
(1) scoring the whole grid in one vectorised numpy call (a law's form evaluates many
theta at once, :mod:`analysis.laws.forms`) and starting L-BFGS only from the best few grid
points, and (2) giving L-BFGS the form's analytic gradient.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..common.errors import FitError
from ..laws import get_law
from .uncertainty import asymptotic_uncertainty

__all__ = ["HUBER_DELTA", "huber", "grid_objective", "solve_form", "Solution", "single_thread_blas", "best_of",
           "distinct_optima", "top_k"]

#: Huber threshold on log-loss residuals (Hoffmann et al. 2022, Sec. 3.3).
HUBER_DELTA = 1e-3

#: L-BFGS starts taken from a form's linear solves beside the grid's best points.
N_LINEAR = 2


def huber(r, delta: float = HUBER_DELTA):
    """Huber loss: r^2/2 for |r| <= delta, delta (|r| - delta/2) beyond (Huber 1964)."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


# ---------------------------------------------------------------------- law forms
#
# A form is a law written in a well-conditioned internal parametrisation theta, with its
# log-prediction vectorised over many theta at once (for grid evaluation) and its
# Jacobian for one theta (for L-BFGS and the covariance).

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


def best_of(form, starts, X, logy, delta, ends: list | None = None):
    """Best L-BFGS end point over ``starts``; every end point is appended to ``ends``."""
    best_theta, best_f = None, np.inf
    for s in starts:
        theta, f, _ = _lbfgs(form, s, X, logy, delta)
        if ends is not None and np.isfinite(f):
            ends.append((f, theta))
        if f < best_f:
            best_theta, best_f = theta, f
    return best_theta, best_f


def distinct_optima(ends: list, limit: int = 3, tol: float = 1e-3) -> list[np.ndarray]:
    """Distinct L-BFGS end points, best first: different local optima make better warm
    starts for bootstrap refits than any grid point."""
    out: list[np.ndarray] = []
    for _, theta in sorted(ends, key=lambda e: e[0]):
        if all(np.max(np.abs(theta - o) / (1.0 + np.abs(o))) > tol for o in out):
            out.append(theta)
        if len(out) == limit:
            break
    return out


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(values))
    idx = np.argpartition(values, k - 1)[:k]
    return idx[np.argsort(values[idx])]


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
    linear_starts: int = 0


def solve_form(law: str, X: dict, logy: np.ndarray, delta: float = HUBER_DELTA, n_starts: int = 8,
               grid=None, uncertainty: bool = True, n_linear: int = N_LINEAR) -> Solution:
    """Minimise the summed Huber loss of log residuals for ``law`` on log inputs ``X``
    (keys x = log N, y = log D, c = log C): the whole grid is scored in one vectorised
    call, L-BFGS-B (analytic gradient) runs from the ``n_starts`` best grid points and,
    unless a ``grid`` is given, from the ``n_linear`` best of the form's linear solves
    (:meth:`analysis.laws.forms.LSEForm.linear_starts`: the start grid is fixed, the data's
    range is not), keeping the lowest objective; lmfit supplies Huber's asymptotic standard
    errors at the optimum (skipped, and left empty, with ``uncertainty=False``: a backtest
    refit only predicts)."""
    lawobj = get_law(law)
    if lawobj.form is None:
        lawobj.check_fittable()
    form, names = lawobj.form, lawobj.params
    fitX = {k: X[k] for k in form.inputs}
    t0 = time.perf_counter()
    use_linear = grid is None and n_linear > 0 and hasattr(form, "linear_starts")  # a given grid runs as given
    grid = np.atleast_2d(np.asarray(grid, dtype=float)) if grid is not None else form.grid({**X, "_logy": logy})
    gvals = grid_objective(form, grid, fitX, logy, delta)
    if not np.any(np.isfinite(gvals)):
        raise FitError(f"the objective is not finite anywhere on the {len(grid)}-point grid", field="grid",
                       fix="check that losses are in nats (a few units), not e.g. percent")
    order = top_k(gvals, n_starts)
    starts = grid[order]
    linear = np.empty((0, starts.shape[1]))
    if use_linear:
        linear = form.linear_starts(fitX, logy)
        if len(linear):
            linear = linear[top_k(grid_objective(form, linear, fitX, logy, delta), n_linear)]
            starts = np.vstack([starts, linear])
    ends: list = []
    with single_thread_blas():
        theta, fbest = best_of(form, starts, fitX, logy, delta, ends)
        if theta is None or not np.isfinite(fbest):
            raise FitError(f"L-BFGS failed from every start for {lawobj.name}", field="law")
        seconds = time.perf_counter() - t0
        stderr, correl, cent, note = (asymptotic_uncertainty(form, theta, fitX, logy, delta, names) if uncertainty
                                      else ({}, {}, {}, ""))
    return Solution(theta, float(fbest), form.to_natural(theta), stderr, correl, cent, note, ends, grid, gvals,
                    order, seconds, len(linear))



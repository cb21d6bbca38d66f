"""Profile likelihood of one parameter of a fitted law: how well do the data determine it?

For each value v on a grid the parameter is held at v and every other parameter is
refitted (the same summed Huber objective and L-BFGS-B as :func:`analysis.fitting.fit.fit_law`,
started from the fit's own optimum). The rise of the objective over its minimum becomes
a deviance through a quasi-likelihood:

* residuals mostly beyond the Huber threshold (|r| > delta for the median point): the
  objective is delta * sum |r| up to a constant, a Laplace likelihood with scale
  b = mean |r|, so deviance = 2 n (f(v) - f_min) / f_min;
* residuals mostly within it: the objective is sum r^2 / 2, a Gaussian likelihood, so
  deviance = n (f(v) - f_min) / f_min (to first order in the rise).

The interval at ``level`` is where the deviance stays below the chi-square(1) quantile
(Wilks 1938; Venzon and Moolgavkar 1988 for profile intervals). An end that the grid
never crosses is open: the data do not bound the parameter on that side within the grid.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..common.errors import InputError
from ..common.text import format_table, num
from ..data.loading import load_points
from .fit import _design
from .optimize import _lbfgs, single_thread_blas
from .result import LawFit

__all__ = ["Profile", "profile"]


@dataclass
class Profile:
    """A parameter's profile: grid values, refitted objective, deviance and interval."""

    param: str
    values: np.ndarray
    objective: np.ndarray
    deviance: np.ndarray
    best: float
    objective_min: float
    level: float
    interval: tuple[float, float]
    open_low: bool
    open_high: bool
    likelihood: str
    others: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"param": self.param, "values": self.values.tolist(), "objective": self.objective.tolist(),
                "deviance": self.deviance.tolist(), "best": self.best, "objective_min": self.objective_min,
                "level": self.level, "interval": list(self.interval), "open_low": self.open_low,
                "open_high": self.open_high, "likelihood": self.likelihood, "others": self.others}

    def table(self) -> str:
        rows = [{self.param: num(v), "objective": f"{f:.8f}", "rise": f"{f - self.objective_min:.2e}",
                 "deviance": f"{d:.3f}", **{k: num(x) for k, x in o.items()}}
                for v, f, d, o in zip(self.values, self.objective, self.deviance, self.others)]
        lo, hi = self.interval
        lo_s = f"< {num(lo)} (open)" if self.open_low else num(lo)
        hi_s = f"> {num(hi)} (open)" if self.open_high else num(hi)
        cols = list(rows[0]) if rows else []
        return "\n".join([format_table(rows, cols, formats={c: str for c in cols}),
                          f"{100 * self.level:g}% profile interval for {self.param}: [{lo_s}, {hi_s}] "
                          f"({self.likelihood} quasi-likelihood; best on the grid {num(self.best)})"])

    def __str__(self) -> str:
        return self.table()


def _fixed_form(form, j: int, theta_j: float):
    """The form with parameter j boxed to one value: L-BFGS-B then leaves it there."""
    fixed = copy.copy(form)
    bounds = list(form.bounds)
    bounds[j] = (theta_j, theta_j)
    object.__setattr__(fixed, "bounds", tuple(bounds))
    return fixed


def profile(fit: LawFit, points, param: str, grid, level: float = 0.90, starts=None) -> Profile:
    """The profile of ``param`` of ``fit`` over ``grid`` (values of the parameter), refitting
    every other parameter on ``points`` (the table the fit was made on) at each value.

    ``starts``: extra start points in the law's natural parameters (dicts); the fit's own
    optimum and the previous grid value's optimum are always tried, and the best end kept.
    """
    from scipy.stats import chi2


    if not isinstance(fit, LawFit):
        raise InputError(f"expected a LawFit, got {type(fit).__name__}", field="fit",
                         fix="pass the result of analysis.fitting.fit.fit_law")
    law = fit.law_obj
    if param not in law.params:
        raise InputError(f"{law.name} has no parameter {param!r}", field="param", fix="use one of " + ", ".join(law.params))
    law.check_fittable()
    grid = np.asarray(grid, dtype=float).ravel()
    if grid.size < 2 or not np.all(np.isfinite(grid)):
        raise InputError("the grid needs two or more finite values", field="grid", fix="e.g. numpy.linspace(10, 25, 16)")
    form = law.form
    df = load_points(points) if not hasattr(points, "columns") else points
    df, _ = law.select_points(df)
    X, _, _ = _design(df, law, None)
    X = {k: X[k] for k in form.inputs}
    logy = np.log(df["loss"].to_numpy(float))
    delta = float(fit.meta.get("huber_delta", 1e-3))
    j = law.params.index(param)
    base = form.from_natural(fit.params)
    extra = [form.from_natural({**fit.params, **s}) for s in (starts or [])]
    objective, others = np.empty(grid.size), []
    prev = base
    with single_thread_blas():
        for i, v in enumerate(grid):
            tj = float(form.from_natural({**fit.params, param: v})[j])
            fixed = _fixed_form(form, j, tj)
            best_f, best_t = math.inf, None
            for s in [base, prev, *extra]:
                s = np.array(s, dtype=float)
                s[j] = tj
                t, f, _ = _lbfgs(fixed, s, X, logy, delta)
                if f < best_f:
                    best_f, best_t = f, t
            objective[i] = best_f
            prev = best_t
            nat = form.to_natural(best_t)
            others.append({k: nat[k] for k in law.params if k != param})
        r = form.logpred(base, X)[0] - logy
    f_min = float(min(objective.min(), fit.objective if fit.objective is not None else math.inf))
    laplace = float(np.median(np.abs(r))) > delta
    k = 2.0 if laplace else 1.0
    deviance = k * len(logy) * (objective - f_min) / f_min
    cut = float(chi2.ppf(level, 1))
    inside = deviance <= cut
    i_best = int(np.argmin(objective))
    lo_i = hi_i = i_best
    while lo_i > 0 and inside[lo_i - 1]:
        lo_i -= 1
    while hi_i < grid.size - 1 and inside[hi_i + 1]:
        hi_i += 1
    lo = _crossing(grid, deviance, lo_i, lo_i - 1, cut) if lo_i > 0 else grid[0]
    hi = _crossing(grid, deviance, hi_i, hi_i + 1, cut) if hi_i < grid.size - 1 else grid[-1]
    return Profile(param, grid, objective, deviance, float(grid[i_best]), f_min, level, (float(lo), float(hi)),
                   open_low=lo_i == 0, open_high=hi_i == grid.size - 1,
                   likelihood="Laplace" if laplace else "Gaussian", others=others)


def _crossing(grid, dev, i_in: int, i_out: int, cut: float) -> float:
    """Where the deviance crosses ``cut`` between an inside and an outside grid point (linear)."""
    a, b = dev[i_in], dev[i_out]
    w = (cut - a) / (b - a) if b != a else 0.0
    return float(grid[i_in] + w * (grid[i_out] - grid[i_in]))

"""Compute-optimal allocation from any fitted or published law, with intervals.

For a law L(N, D) and training compute C = 6ND (Kaplan et al. 2020, Sec. 2.1), the
compute-optimal model minimises L(N, C / 6N) over N. The Chinchilla form (and the
over-training law, its special case alpha = beta) has the closed form of Hoffmann et al.
2022, eq. (4); other laws (Kaplan's joint law) are minimised numerically. Allocation
fits from Approaches 1 and 2 predict (N_opt, D_opt) directly. When the fit carries
bootstrap draws every draw is allocated, and percentile intervals are returned.
"""
from __future__ import annotations

import numpy as np

from ..common.errors import InputError
from ..laws import get_law
from .result import AllocationFit, LawFit, interval_from_samples

__all__ = ["compute_optimal", "optimal_allocation"]


def optimal_allocation(law: str, params: dict, C, flops_per_param_token: float = 6.0):
    """(N_opt, D_opt, L_opt) arrays at compute C for a law of (N, D) with given parameters
    (:meth:`analysis.laws.Law.optimal_allocation`: closed form where the law has one)."""
    obj = get_law(law)
    C = np.asarray(C, dtype=float)
    n, d = obj.optimal_allocation(params, C, flops_per_param_token)
    loss = obj.evaluate(params, N=n, D=d)
    return np.asarray(n, float), np.asarray(d, float), np.asarray(loss, float)


def compute_optimal(fit, C, level: float | None = None, flops_per_param_token: float = 6.0) -> dict:
    """Compute-optimal allocation at compute C (FLOPs) for a fitted or published law.

    ``fit`` is a :class:`~analysis.fitting.result.LawFit` of (N, D) (chinchilla, gadre2024,
    kaplan_nd) or an :class:`~analysis.fitting.result.AllocationFit` from Approach 1 or 2. Returns
    ``C``, ``n_opt``, ``d_opt``, ``tokens_per_param`` (arrays), ``loss`` for laws, and,
    when the fit has bootstrap samples, ``n_opt_ci``, ``d_opt_ci``,
    ``tokens_per_param_ci`` (and ``loss_ci``) as (low array, high array) at ``level``
    (default: the fit's own level).
    """
    C = np.atleast_1d(np.asarray(C, dtype=float))
    if np.any(~np.isfinite(C)) or np.any(C <= 0):
        raise InputError("compute budgets must be positive numbers", field="C", fix="e.g. 1e21")
    out: dict = {"C": C}
    if isinstance(fit, AllocationFit):
        n, d = fit.predict(C)
        out.update(n_opt=np.asarray(n), d_opt=np.asarray(d), tokens_per_param=np.asarray(d) / np.asarray(n))
        draws = fit.predict_samples(C)
        lvl = fit.ci_level if level is None else level
        if draws is not None:
            nd, dd = draws
            out["n_opt_ci"] = interval_from_samples(nd, lvl)
            out["d_opt_ci"] = interval_from_samples(dd, lvl)
            out["tokens_per_param_ci"] = interval_from_samples(dd / nd, lvl)
        out["warnings"] = fit.extrapolation_warnings(C=C)
        return out
    if not isinstance(fit, LawFit):
        raise InputError(f"expected a LawFit or AllocationFit, got {type(fit).__name__}", field="fit",
                         fix="pass the result of fit_law, approach1/approach2 or published_law")
    n, d, loss = optimal_allocation(fit.law, fit.params, C, flops_per_param_token)
    out.update(n_opt=n, d_opt=d, tokens_per_param=d / n, loss=loss)
    draws = fit.sample_params()
    if draws:
        lvl = fit.ci_level if level is None else level
        ns, ds, ls = [], [], []
        for p in draws:
            if not all(np.isfinite(v) for v in p.values()):
                continue
            a, b, c = optimal_allocation(fit.law, p, C, flops_per_param_token)
            ns.append(a)
            ds.append(b)
            ls.append(c)
        if ns:
            ns, ds, ls = np.array(ns), np.array(ds), np.array(ls)
            out["n_opt_ci"] = interval_from_samples(ns, lvl)
            out["d_opt_ci"] = interval_from_samples(ds, lvl)
            out["tokens_per_param_ci"] = interval_from_samples(ds / ns, lvl)
            out["loss_ci"] = interval_from_samples(ls, lvl)
    out["warnings"] = fit.extrapolation_warnings(N=n, D=d) if fit.data_range else []
    return out

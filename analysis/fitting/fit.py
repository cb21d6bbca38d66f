"""Fitting scaling laws to observed points: Chinchilla Approach 3, the over-training law,
Kaplan's forms, any registered :class:`~analysis.laws.Law`, and bootstrap intervals.

The method is the one Hoffmann et al. 2022 (Sec. 3.3 and App. D.2) describe and
Besiroglu et al. 2024 reproduce: minimise the summed Huber loss (delta = 1e-3) of the
log-loss residuals with L-BFGS from a grid of initialisations, the law written in its
form's well-conditioned parametrisation (:mod:`analysis.fitting.optimize`). Bootstrap refits
start from the full-data optimum plus the best few points of a pruned grid, and run in
parallel processes (:mod:`analysis.fitting.bootstrap`).

lmfit supplies bounds-aware asymptotic standard errors and correlations at the optimum
(:mod:`analysis.fitting.uncertainty`). For a Huber fit those are approximations; the bootstrap
percentile interval is the honest one, and the report says which was used.

This module prepares the data a law needs, checks the design, runs the fit and
assembles the :class:`~analysis.fitting.result.LawFit`; it knows no law by name.
"""
from __future__ import annotations

import math
import re
import time

import numpy as np
import pandas as pd

from ..common.errors import FitError, InputError, TableError
from ..data.loading import describe_points, load_points, table_notes
from ..data.points import check_repeats, frontier_points, log_key, lower_envelope, n_distinct, repeat_groups, with_flops
from ..laws import LAWS, fittable, get_law
from ..laws.base import INPUT_COLUMNS, Law
from ..laws.forms import EPOCH_GRID, LOG_INPUTS
from ..laws.mix import mix_law
from .bootstrap import (bootstrap_indices, choose_resample, independent_units, n_jobs_for, parallel_map, refit_chunk,
                        short_of_sizes)
from .optimize import HUBER_DELTA, distinct_optima, huber, solve_form, top_k
from .result import LawFit, check_interval_args, interval_from_samples
from .uncertainty import asymptotic_ci, cluster_covariance, fit_warnings

__all__ = ["fit_law", "FIT_LAWS", "HUBER_DELTA", "EPOCH_GRID", "huber", "pick_kaplan_law",
           "frontier_points", "lower_envelope", "bootstrap_indices", "parallel_map", "choose_resample", "short_of_sizes",
           "solve_form", "asymptotic_ci", "fit_warnings"]

#: Laws :func:`fit_law` can fit (at import; :func:`analysis.laws.fittable` is always current).
FIT_LAWS = fittable()


# ---------------------------------------------------------------------- data preparation

def _design(points: pd.DataFrame, law, nonembedding: bool | None):
    """Log inputs the form needs, plus a description of what was used."""
    notes = []
    n_col = "params"
    if law.nonembedding:
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
    X = {LOG_INPUTS["N"]: np.log(points[n_col].to_numpy(float)),
         LOG_INPUTS["D"]: np.log(points["tokens"].to_numpy(float))}
    # every other law input the table has, by its column (C = flops, U = unique_tokens)
    for key, col in INPUT_COLUMNS.items():
        if key not in ("N", "D") and col in points.columns:
            X[LOG_INPUTS[key]] = np.log(points[col].to_numpy(float))
    return X, n_col, notes


def _check_design(points: pd.DataFrame, lawobj, n_params: int) -> list[str]:
    """Errors for fits that cannot be done, warnings for fits the data barely support."""
    warn = []
    law = lawobj.name
    n = len(points)
    sizes, budgets = n_distinct(points["params"]), n_distinct(points["tokens"])
    needs = lawobj.needs
    absent = [c for c in needs if c not in points.columns]
    if absent:
        raise TableError(f"{law} needs a {absent[0]} column, which the table lacks", field=absent[0],
                         fix=f"add {absent[0]} to the table, or fit a law without that input")
    counts = {col: n_distinct(points[col]) for col in needs}
    counts.update(params=sizes, tokens=budgets)
    words = {"params": ("model size", "model sizes"), "tokens": ("token budget", "token budgets"),
             "flops": ("compute budget", "compute budgets"),
             "unique_tokens": ("unique-token budget", "unique-token budgets")}
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


def fit_law(points, law: str | Law = "chinchilla", bootstrap: int = 0, seed: int = 0, n_jobs: int | None = None,
            level: float = 0.90, *, delta: float = HUBER_DELTA, n_starts: int = 8, grid=None,
            bootstrap_starts: int = 1, resample: str = "auto", nonembedding: bool | None = None,
            frontier: bool = True, progress=None, allow_repeats: bool = False, uncertainty: bool = True) -> LawFit:
    """Fit ``law`` to observed points and return a :class:`~analysis.fitting.result.LawFit`.

    ``points`` is anything :func:`analysis.data.loading.load_points` accepts (a DataFrame with
    ``params``, ``tokens``, ``loss`` columns, a table file, or a sweep directory).
    ``law`` is the name of a fittable law (:data:`FIT_LAWS`, or any law registered with
    :func:`analysis.laws.register_law`) or the :class:`~analysis.laws.Law` itself. With ``bootstrap`` > 0 the fit is repeated on that
    many resamples (whole runs when the table has a ``run`` column with more than one point
    per run and enough runs per model size, single points otherwise, with a note saying
    why: :func:`choose_resample`) across ``n_jobs`` processes; the draws are kept in
    ``.samples`` and give percentile intervals at ``level`` for every parameter and,
    through ``predict_interval`` and :mod:`analysis.fitting.allocation`, for every derived quantity.

    Options: ``delta`` (Huber threshold, default 1e-3), ``n_starts`` (L-BFGS starts taken
    from the grid, default 8), ``grid`` (custom initialisation grid in the internal
    parametrisation), ``bootstrap_starts`` (grid starts per refit besides the warm start,
    default 1), ``resample`` ("auto", "runs" or "points"), ``nonembedding`` (Kaplan laws:
    use ``params_nonembedding`` as N; default when the column exists), ``frontier``
    (kaplan_c: fit the compute-efficient frontier only; default True), ``progress``
    (None: a bar on a terminal, log lines otherwise; False: silent), ``allow_repeats``
    (rows sharing N and D to 1e-6 are seeds: keep them, and draw each group as one point
    in the bootstrap; without it such rows are refused unless their run names differ),
    ``uncertainty`` (False: skip the asymptotic covariance, for refits that only predict;
    the standard errors are then empty).
    """

    if get_law(law).components:  # a stacked combination: each component fitted on its own
        return fit_mix(points, get_law(law), bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, level=level, delta=delta,
                       n_starts=n_starts, grid=grid, bootstrap_starts=bootstrap_starts, resample=resample,
                       nonembedding=nonembedding, frontier=frontier, progress=progress, allow_repeats=allow_repeats,
                       uncertainty=uncertainty)
    delta, n_starts, bootstrap_starts = float(delta), int(n_starts), int(bootstrap_starts)
    custom_grid, frontier, allow_repeats, uncertainty = grid, bool(frontier), bool(allow_repeats), bool(uncertainty)
    check_interval_args(level, bootstrap)
    if resample not in ("auto", "runs", "points"):
        raise InputError(f"unknown resample {resample!r}", field="resample", fix="auto, runs or points")
    lawobj = get_law(law)
    if LAWS.get(lawobj.name) is not lawobj:
        raise InputError(f"law {lawobj.name!r} is not registered", field="law",
                         fix="call analysis.laws.register_law(law) first, so fits and saved results can name it")
    lawobj.check_fittable()
    form, law = lawobj.form, lawobj.name

    df = points if isinstance(points, pd.DataFrame) and "params" in points.columns else load_points(points)
    if isinstance(points, pd.DataFrame):
        df = with_flops(df)
    _check_finite(df)
    notes = table_notes(df)
    all_points = df
    df, sel_notes = lawobj.select_points(df, frontier)
    notes += sel_notes
    X, n_col, design_notes = _design(df, lawobj, nonembedding)
    notes += design_notes
    warn = _check_design(df, lawobj, len(form.theta_names))
    repeats = check_repeats(all_points, allow_repeats)
    logy = np.log(df["loss"].to_numpy(float))
    fitX = {k: X[k] for k in form.inputs}

    sol = solve_form(law, X, logy, delta=delta, n_starts=n_starts, grid=custom_grid, uncertainty=uncertainty)
    theta, fbest, ends, grid, gvals, order = sol.theta, sol.objective, sol.ends, sol.grid, sol.gvals, sol.order
    params, stderr, correl, cent_correl, cov_note = sol.params, sol.stderr, sol.correl, sol.cent_correl, sol.cov_note
    fit_seconds = sol.seconds

    _check_fitted(law, params, df, n_col)

    info = describe_points(df)
    if n_col == "params_nonembedding":
        info["data_range"]["N"] = (float(df[n_col].min()), float(df[n_col].max()))
    data_range = {k: v for k, v in info["data_range"].items() if k in lawobj.inputs and v is not None}

    warn += fit_warnings(params, stderr, cent_correl, lawobj.bounds)
    if cov_note:
        warn.append(cov_note)

    samples, ci, ci_method, boot_meta = None, {}, "asymptotic", {}
    if bootstrap:
        groups, drawn, resample_note, resample_warning = choose_resample(df, law, n_col, resample, level)
        by_repeat = groups is None and repeats is not None and allow_repeats
        if by_repeat:
            # seeds of one (N, D) are one design point: drawn together, they cannot shrink the interval
            groups = repeat_groups(df)
            notes.append(f"the bootstrap draws each of the {len(np.unique(groups))} distinct (N, D) as one point "
                         "with all its repeats")
        if resample_note:
            notes.append(resample_note)
        if resample_warning:
            warn.append(resample_warning)
        # Pruned grid for refits: the grid points that did best on the full data.
        pool = grid[top_k(gvals, min(len(grid), 64))]
        idx_sets = bootstrap_indices(len(df), bootstrap, groups, seed)
        jobs = n_jobs_for(n_jobs, bootstrap)
        n_chunks = min(bootstrap, max(1, 4 * jobs))
        bounds_ = np.linspace(0, bootstrap, n_chunks + 1).astype(int)
        warm = distinct_optima(ends)
        chunks = [(law, fitX, logy, idx_sets[a:b], warm, pool, bootstrap_starts, delta)
                  for a, b in zip(bounds_[:-1], bounds_[1:]) if b > a]
        tb = time.perf_counter()
        parts = parallel_map(refit_chunk, chunks, jobs, desc=f"bootstrap {law}",
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
        unit = "points" if groups is None else ("(N, D) points" if by_repeat else
                                                ("model sizes" if drawn == "sizes" else "runs"))
        boot_meta = {"n": bootstrap, "failed": n_failed, "unit": unit,
                     "seconds": round(time.perf_counter() - tb, 3), "n_jobs": jobs, "seed": seed}
        if n_failed:
            warn.append(f"{n_failed} of {bootstrap} bootstrap refits failed and were left out")
    else:
        ci = asymptotic_ci(params, stderr, level)

    grid_desc = "custom grid" if custom_grid is not None else lawobj.describe_grid(len(grid))
    method = (f"Huber (delta={delta:g}) on log loss, summed; L-BFGS-B with analytic gradient from the "
              f"{len(order)} best of {grid_desc}")
    if sol.linear_starts:
        method += f" and the {sol.linear_starts} best linear solves for its coefficients over an exponent grid"
    if bootstrap:
        method += f"; {bootstrap} bootstrap refits resampling {boot_meta['unit']}"
    meta = {"huber_delta": delta, "grid_size": int(len(grid)), "starts": int(len(order)),
            "linear_starts": int(sol.linear_starts), "fit_seconds": round(fit_seconds, 4), "ci_method": ci_method,
            "notes": notes, "n_column": n_col, "theta": [float(t) for t in theta],
            "theta_names": list(form.theta_names),
            "correl_centered": cent_correl,
            "stderr_method": "asymptotic (Huber 1981 M-estimator covariance via lmfit on pseudo-observations); "
                             "indicative only for a Huber fit, the bootstrap interval is the honest one"}
    # per fitted size, the tokens per parameter it was seen at: how far an answer extrapolates in D/N
    tpp = (df["tokens"] / df["params"]).groupby(log_key(df["params"])).agg(["min", "max"])
    first = df.groupby(log_key(df["params"]))["params"].first()
    meta["tokens_per_param_by_size"] = {f"{first[k]:.6g}": [float(r["min"]), float(r["max"])]
                                        for k, r in tpp.iterrows()}
    if uncertainty:
        # the covariance counting independent runs rather than points: what a test of the law's
        # own constraint must use when points share a run (analysis.selection.checks.constraint_test)
        groups, unit = independent_units(df, n_col)
        cov = cluster_covariance(form, theta, fitX, logy, delta, lawobj.params, groups)
        meta["units"] = {"unit": unit, "count": int(np.unique(groups).size)}
        if cov is not None:
            meta["cluster_covariance"] = [[float(v) for v in row] for row in cov]
    if boot_meta:
        meta["bootstrap"] = boot_meta
    if n_col == "params_nonembedding":
        meta["inputs"] = {"N": "params_nonembedding"}
    return LawFit(law=law, params=params, ci=ci, ci_level=level, stderr=stderr, correl=correl, samples=samples,
                  n_points=info["n_points"], n_sizes=n_distinct(df[n_col]), n_budgets=info["n_budgets"],
                  data_range=data_range, method=method, objective=float(fbest), warnings=warn, source="fit",
                  meta=meta)


def check_points(points, law: str = "chinchilla", allow_repeats: bool = False) -> None:
    """Every refusal :func:`fit_law` would make before fitting ``law`` to ``points``: bad
    values, a design that cannot determine the law, repeated points."""

    lawobj = get_law(law)
    if lawobj.components:  # a combination: each of its laws must be determined
        for part in lawobj.components:
            check_points(points, part, allow_repeats)
        return
    _check_finite(points)
    df, _ = lawobj.select_points(points)
    _check_design(df, lawobj, len(lawobj.form.theta_names) if lawobj.form is not None else len(lawobj.params))
    check_repeats(points, allow_repeats)


def _check_fitted(law: str, params: dict, df: pd.DataFrame, n_col: str) -> None:
    """Refuse an optimum that is no law at all: non-finite parameters, or predictions that
    overflow or underflow to zero at the data. It happens to the pure power laws of Kaplan et al. 2020 when the
    loss does not fall with the input: the exponent runs to 0 and the scale to infinity."""
    lawobj = get_law(law)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        finite_params = all(math.isfinite(v) for v in params.values())
        given = {k: df[col].to_numpy(float) for k, col in INPUT_COLUMNS.items() if k != "N" and col in df.columns}
        pred = lawobj.evaluate(params, N=df[n_col].to_numpy(float), **given) \
            if finite_params else np.array([np.nan])
    if finite_params and np.all(np.isfinite(pred)) and np.all(pred > 0):
        return
    inputs = {"N": "model size", "D": "tokens", "C": "compute", "U": "unique tokens"}
    falls = " and ".join(inputs[i] for i in lawobj.inputs)
    shown = ", ".join(f"{k}={v:.3g}" for k, v in params.items())
    raise FitError(f"{law} has no finite fit to these points ({shown}): the loss does not fall "
                   f"as a power of {falls}", field="loss",
                   fix="check that loss falls with model size and tokens, or fit a law with a floor "
                       "(--law chinchilla)")


def _check_finite(df: pd.DataFrame) -> None:
    for col in ("params", "tokens", "loss"):
        if col not in df.columns:
            raise TableError(f"missing column {col}", field=col, fix="load the table with analysis.data.loading.load_points")
        v = df[col].to_numpy(float)
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise TableError(f"{col} has missing, non-finite or non-positive values", field=col,
                             fix="load the table with analysis.data.loading.load_points(..., policy='omit') to drop them")



# ---------------------------------------------------------------------- choosing a Kaplan form

def pick_kaplan_law(points: pd.DataFrame) -> str:
    """The Kaplan form the data support: the joint L(N, D) when both N and D vary,
    L(N) with one token budget, L(D) with one model size."""
    sizes, budgets = n_distinct(points["params"]), n_distinct(points["tokens"])
    if sizes >= 2 and budgets >= 2:
        return "kaplan_nd"
    if sizes >= 2:
        return "kaplan_n"
    if budgets >= 2:
        return "kaplan_d"
    raise TableError("one model size and one token budget: no Kaplan law can be fitted", field="rows",
                     fix="add runs at several sizes or budgets")


# ------------------------------------------------------------------ combinations

def _prefixed_warning(law: str, warning: str) -> str:
    """A component's warning with its parameters named as the combination names them
    (``parameter E`` -> ``parameter chinchilla.E``), so the checks can tell what they already said."""
    out = warning
    for p in get_law(law).params:
        out = re.sub(rf"(?<![\w.]){re.escape(p)}(?![\w.])", f"{law}.{p}", out)
    return out if out != warning else f"{law}: {warning}"


def fit_mix(points, law, bootstrap: int = 0, seed: int = 0, n_jobs: int | None = None, level: float = 0.90,
            **options):
    """Fit a combination (its name ``mix(a=0.6,b=0.4)``, its weights, or its Law): each
    component by :func:`analysis.fitting.fit.fit_law` with the same options and bootstrap seed, so
    draw i of every component refits the same resample and the combination's draw i is
    their weighted sum."""
    mlaw = get_law(law) if isinstance(law, (Law, str)) else mix_law(law)
    weights = mlaw.components
    fits = {n: fit_law(points, n, bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, level=level, **options)
            for n in weights}
    first = next(iter(fits.values()))

    def prefixed(attr):
        return {f"{n}.{p}": v for n, f in fits.items() for p, v in getattr(f, attr).items()}

    correl = {f"{n}.{p}": {f"{n}.{q}": c for q, c in row.items()} for n, f in fits.items()
              for p, row in f.correl.items()}
    samples = None
    if all(f.samples is not None for f in fits.values()) and len({len(f.samples) for f in fits.values()}) == 1:
        samples = np.hstack([f.samples for f in fits.values()])
    meta = {k: first.meta[k] for k in ("ci_method", "notes", "n_column", "bootstrap", "inputs") if k in first.meta}
    meta["components"] = {n: {"weight": w, "method": fits[n].method, "objective": fits[n].objective}
                          for n, w in weights.items()}
    return LawFit(
        law=mlaw.name, params=prefixed("params"), ci=prefixed("ci"), ci_level=level, stderr=prefixed("stderr"),
        correl=correl, samples=samples, n_points=first.n_points, n_sizes=first.n_sizes, n_budgets=first.n_budgets,
        data_range=first.data_range,
        method="stacked combination, each law fitted on its own: "
               + "; ".join(f"{n} (weight {w:.3g})" for n, w in weights.items()) + f". Each: {first.method}",
        objective=None, warnings=[_prefixed_warning(n, w) for n, f in fits.items() for w in f.warnings], source="fit",
        meta=meta)

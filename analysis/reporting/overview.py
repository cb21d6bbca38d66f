"""Whole-sweep views: the compute-efficient frontier, every fitting method side by side,
and sanity checks of a fitted law.

These are the conveniences the notebooks and ``scaling demo`` build on, so that neither
has to define anything of its own:

* :func:`compute_frontier`: the measurements no cheaper one beats (Kaplan et al. 2020,
  Sec. 6.1), from a sweep's points and logged curves;
* :func:`fit_methods`: Hoffmann et al. 2022's Approaches 1, 2 and 3 and Kaplan et al.
  2020's joint law and L(C_min) on one sweep, a method that does not apply to the sweep's
  design kept as its one-line reason instead of an exception;
* :func:`allocation_table` and :func:`parameter_table`: those fits (and the published
  laws) as tables: allocation exponents and the compute-optimal split at one budget, and
  every parameter with its interval beside the published values;
(the sanity checks of a fitted law, :func:`analysis.selection.checks.law_checks`, live with
the other self-checks).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..common.errors import InputError, ToolkitError
from ..common.text import si
from ..data.loading import load_points
from ..data.points import lower_envelope
from ..data.published import published_law
from ..fitting.allocation import compute_optimal
from ..fitting.approaches import approach1, approach2
from ..fitting.fit import fit_law
from ..fitting.result import AllocationFit, LawFit
from ..selection.checked import set_aside_short_runs

__all__ = ["compute_frontier", "METHODS", "fit_methods", "allocation_table", "parameter_table"]


# ============================================================================ frontier

def compute_frontier(points=None, curves: Mapping | None = None) -> pd.DataFrame:
    """The compute-efficient frontier of a sweep: every measurement (a point, or a row of a
    logged validation curve) that no measurement with less or equal compute beats
    (Kaplan et al. 2020, Sec. 6.1, whose L(C_min) is fitted to this envelope).

    Compute is 6ND (Kaplan et al. 2020, Sec. 2.1) with N the ``params`` column, the
    convention of the extrapolation and of the figures. Returns a DataFrame sorted by
    compute with ``run``, ``params``, ``tokens``, ``flops`` (6ND), ``loss`` and ``source``
    (``point`` or ``curve``).
    """

    frames = []
    if points is not None and len(points):
        p = points.assign(source="point")
        if "run" not in p.columns:
            p = p.assign(run=[f"N={si(float(n))}" for n in p["params"]])
        frames.append(p[["run", "params", "tokens", "loss", "source"]])
    for run, c in (curves or {}).items():
        if c is None or not len(c):
            continue
        frames.append(pd.DataFrame({"run": str(run), "params": c["params"].to_numpy(float),
                                    "tokens": c["tokens"].to_numpy(float), "loss": c["loss"].to_numpy(float),
                                    "source": "curve"}))
    if not frames:
        raise InputError("no measurements", field="points", fix="give a sweep's points or its runs' curves")
    df = pd.concat(frames, ignore_index=True)
    df = df[np.isfinite(df["loss"].to_numpy(float)) & (df["loss"].to_numpy(float) > 0)]
    df = df.assign(flops=6.0 * df["params"].astype(float) * df["tokens"].astype(float))
    # Points first: a branch point and the curve row at the same compute are the same
    # measurement, and the point carries the run's own name for it.
    df = df.sort_values(["flops", "loss", "source"], ascending=[True, True, False], kind="mergesort")
    cols = ["run", "params", "tokens", "flops", "loss", "source"]
    return lower_envelope(df)[cols].reset_index(drop=True)


# ============================================================================ all methods on one sweep

#: Method name -> what it is, in display order.
METHODS = {
    "approach1": "Hoffmann et al. 2022 Approach 1: minimum over training curves at fixed FLOPs",
    "approach2": "Hoffmann et al. 2022 Approach 2: IsoFLOP profiles",
    "approach3": "Hoffmann et al. 2022 Approach 3: L(N, D) = E + A/N^alpha + B/D^beta",
    "kaplan": "Kaplan et al. 2020 joint law L(N, D), eq. (1.5), N non-embedding",
    "kaplan_c": "Kaplan et al. 2020 L(C_min), eq. (1.3), on the compute-efficient frontier",
}


def fit_methods(source, points=None, bootstrap: int = 200, seed: int = 0, n_jobs: int | None = None,
                level: float = 0.90, resample: str = "auto", methods: Sequence[str] = tuple(METHODS),
                progress=None, min_tpp: float | None = None) -> dict:
    """Fit every method in ``methods`` (keys of :data:`METHODS`) to one sweep.

    ``source`` is a sweep directory (Approach 1 then uses each run's logged validation
    curve) or a table; ``points`` the loaded points (default ``load_points(source)``).
    Returns method -> :class:`LawFit` / :class:`AllocationFit`, or -> the one-line reason
    (a string) when the method cannot be fitted to this design, e.g. Approach 2 on a
    sweep without IsoFLOP profiles. ``resample`` is passed to the parametric fits
    (:func:`analysis.fitting.fit.fit_law`). The laws of N and D (approach3, kaplan) are
    fitted to the runs of ``min_tpp`` tokens per parameter or more, as every fit of the
    toolkit is (None: the policy's threshold; 0: every run); Approaches 1 and 2 read whole
    curves and IsoFLOP profiles and take every run. Bad input in general (an unreadable
    source, unknown method) still raises.
    """

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}", field="methods",
                         fix="use some of " + ", ".join(METHODS))
    if points is None:
        points = load_points(source)
    opts = dict(bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, level=level, resample=resample, progress=progress)
    long_runs, _ = set_aside_short_runs(points, "chinchilla", min_tpp=min_tpp)  # as fit_checked does
    runs = {
        "approach1": lambda: approach1(source, bootstrap=bootstrap, seed=seed, level=level),
        "approach2": lambda: approach2(points, bootstrap=bootstrap, seed=seed, level=level),
        "approach3": lambda: fit_law(long_runs, "chinchilla", **opts),
        "kaplan": lambda: fit_law(long_runs, "kaplan_nd", **opts),
        "kaplan_c": lambda: fit_law(points, "kaplan_c", **opts),
    }
    out: dict = {}
    for m in methods:
        try:
            out[m] = runs[m]()
        except ToolkitError as e:
            out[m] = str(e)
    return out


def _local_exponents(fit, C: float) -> tuple[float, float]:
    """d log N_opt / d log C and d log D_opt / d log C at C, for any fit compute_optimal takes."""

    r = compute_optimal(fit, [C / 2.0, C * 2.0])
    n, d = r["n_opt"], r["d_opt"]
    return float(math.log(n[1] / n[0]) / math.log(4.0)), float(math.log(d[1] / d[0]) / math.log(4.0))


def allocation_table(fits: Mapping, C: float, published: Sequence[str] = ("hoffmann2022", "besiroglu2024",
                                                                        "kaplan2020")) -> pd.DataFrame:
    """Compute-optimal allocation by every fit (and published law) side by side.

    One row per method: ``a`` and ``b`` (N_opt ~ C^a, D_opt ~ C^b; Hoffmann et al. 2022,
    eq. 4 for Chinchilla-form laws, the fitted power laws for Approaches 1 and 2, local
    slopes at ``C`` otherwise) with their bootstrap intervals where the fit has draws,
    then ``n_opt``, ``d_opt``, ``tokens_per_param`` at compute ``C`` (FLOPs) with
    intervals, and ``note``: why a method gave no answer, or what to keep in mind. Laws
    that take L(C) alone (Kaplan's L(C_min)) say nothing about the split and are left out.
    """

    entries = list(fits.items()) + [(name, published_law(name)) for name in published]
    rows = []
    for name, fit in entries:
        row = {"method": name, "source": "published" if isinstance(fit, LawFit) and fit.is_published else "fit"}
        if isinstance(fit, str):
            rows.append({**row, "note": fit})
            continue
        if isinstance(fit, LawFit) and not {"N", "D"} <= set(fit.law_obj.inputs):
            continue
        try:
            r = compute_optimal(fit, C)
            a, b = _local_exponents(fit, C)
        except ToolkitError as e:
            rows.append({**row, "note": str(e)})
            continue
        ci = {}
        if isinstance(fit, AllocationFit):
            a, b = fit.params["a"], fit.params["b"]
            ci = {k: fit.ci[k] for k in ("a", "b") if k in fit.ci}
        else:  # the law's own allocation exponents, where it derives them (Hoffmann et al. 2022, eq. 4)
            ci = fit.derived_ci()
        row.update(a=a, a_low=ci.get("a", (None, None))[0], a_high=ci.get("a", (None, None))[1],
                   b=b, b_low=ci.get("b", (None, None))[0], b_high=ci.get("b", (None, None))[1],
                   n_opt=float(r["n_opt"][0]), d_opt=float(r["d_opt"][0]),
                   tokens_per_param=float(r["tokens_per_param"][0]))
        for q in ("n_opt", "tokens_per_param"):
            if f"{q}_ci" in r:
                row[f"{q}_low"], row[f"{q}_high"] = float(r[f"{q}_ci"][0][0]), float(r[f"{q}_ci"][1][0])
        notes = list(r.get("warnings") or [])
        if isinstance(fit, LawFit) and fit.meta.get("inputs", {}).get("N") == "params_nonembedding":
            notes.insert(0, "N counts non-embedding parameters")
        if isinstance(fit, LawFit) and fit.is_published:
            notes.insert(0, "published law, fitted on other data")
        row["note"] = "; ".join(notes)
        rows.append(row)
    cols = ["method", "source", "a", "a_low", "a_high", "b", "b_low", "b_high", "n_opt", "n_opt_low",
            "n_opt_high", "d_opt", "tokens_per_param", "tokens_per_param_low", "tokens_per_param_high", "note"]
    return pd.DataFrame(rows).reindex(columns=cols)


def parameter_table(fits: Mapping, published: Sequence[str] = ("hoffmann2022", "besiroglu2024",
                                                             "kaplan2020")) -> pd.DataFrame:
    """Every fitted parameter with its interval, beside the published value of the same
    parameter in a law of the same form (``hoffmann2022`` and ``besiroglu2024`` for
    Approach 3, ``kaplan2020`` for Kaplan's joint law). Exponents compare across data
    sets; scale constants (E, A, B, N_c, D_c) depend on the data and tokenizer.

    One row per (method, parameter): ``value``, ``low``, ``high`` (the fit's interval at
    its level), ``stderr``, and one column per published law.
    """

    refs = [published_law(name) for name in published]
    rows = []
    for name, fit in fits.items():
        if isinstance(fit, str):
            continue
        for p, v in fit.params.items():
            lo, hi = fit.ci.get(p, (None, None))
            row = {"method": name, "param": p, "value": v, "low": lo, "high": hi, "stderr": fit.stderr.get(p)}
            for ref in refs:
                same_form = isinstance(fit, LawFit) and ref.law_obj is fit.law_obj
                row[ref.name] = ref.params.get(p) if same_form else None
            rows.append(row)
    return pd.DataFrame(rows)


# ============================================================================ sanity checks

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
* :func:`law_checks`: does the fitted law say what a scaling law must (loss falls with N
  and D, positive exponents, no parameter on a bound), which parameters the data leave
  undetermined, and where the measurements themselves break monotonicity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..common.errors import InputError, ToolkitError
from ..fitting.result import AllocationFit, LawFit, bound_warnings, correlation_warnings, uncertainty_warnings
from ..common.text import num, si

__all__ = ["compute_frontier", "METHODS", "fit_methods", "allocation_table", "parameter_table", "Check",
           "law_checks", "checks_text", "checks_markdown"]


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
    from ..data.points import lower_envelope

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
                progress=None) -> dict:
    """Fit every method in ``methods`` (keys of :data:`METHODS`) to one sweep.

    ``source`` is a sweep directory (Approach 1 then uses each run's logged validation
    curve) or a table; ``points`` the loaded points (default ``load_points(source)``).
    Returns method -> :class:`LawFit` / :class:`AllocationFit`, or -> the one-line reason
    (a string) when the method cannot be fitted to this design, e.g. Approach 2 on a
    sweep without IsoFLOP profiles. ``resample`` is passed to the parametric fits
    (:func:`analysis.fitting.fit.fit_law`). Bad input in general (an unreadable source, unknown
    method) still raises.
    """
    from ..fitting.approaches import approach1, approach2
    from ..data.loading import load_points
    from ..fitting.fit import fit_law

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}", field="methods",
                         fix="use some of " + ", ".join(METHODS))
    if points is None:
        points = load_points(source)
    opts = dict(bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, level=level, resample=resample, progress=progress)
    runs = {
        "approach1": lambda: approach1(source, bootstrap=bootstrap, seed=seed, level=level),
        "approach2": lambda: approach2(points, bootstrap=bootstrap, seed=seed, level=level),
        "approach3": lambda: fit_law(points, "chinchilla", **opts),
        "kaplan": lambda: fit_law(points, "kaplan_nd", **opts),
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
    from ..fitting.allocation import compute_optimal

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
    from ..fitting.allocation import compute_optimal
    from ..data.published import published_law

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
    from ..data.published import published_law

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

@dataclass
class Check:
    """One sanity check: ``status`` is ``ok``, ``warn`` (the data cannot tell, or the
    measurements themselves are not monotone) or ``fail`` (the law contradicts what a
    scaling law must say)."""

    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"[{self.status.upper():4}] {self.name}: {self.detail}"


def _with_ci(fit: LawFit, p: str) -> str:
    lo, hi = fit.ci.get(p, (None, None))
    return f"{p} = {num(fit.params[p])}" + (f" [{num(lo)}, {num(hi)}]" if lo is not None else "")


def law_checks(fit: LawFit, points=None) -> list[Check]:
    """Sanity checks of a fitted L(N, D) and of the measurements it was fitted to.

    * the law's loss falls with N and with D across the data's range;
    * every exponent is positive;
    * no parameter sits on a bound of the search box;
    * every parameter is determined by the data (standard error small against its value,
      no pair with |correlation| >= 0.995 in centred coordinates): a ``warn`` names the
      parameters a small sweep leaves open, typically the irreducible loss E when no run
      is near convergence;
    * with ``points``: within each model size the measured loss falls with tokens, and at
      each token budget shared by several sizes it falls with size (``warn`` lists each
      exception: noise, or a larger model not yet ahead early in training).
    """
    if not isinstance(fit, LawFit) or not {"N", "D"} <= set(fit.law_obj.inputs):
        raise InputError("sanity checks need a fitted law of N and D", field="fit",
                         fix="pass the LawFit of chinchilla, gadre2024 or kaplan_nd")
    checks: list[Check] = []
    rng = fit.data_range
    n_lo, n_hi = rng.get("N", (1e6, 1e7))
    d_lo, d_hi = rng.get("D", (1e6, 1e7))
    n_mid, d_mid = math.sqrt(n_lo * n_hi), math.sqrt(d_lo * d_hi)
    exps = list(fit.law_obj.exponents)
    for var, (lo, hi), other in (("N", (n_lo, n_hi), d_mid), ("D", (d_lo, d_hi), n_mid)):
        xs = np.geomspace(lo, hi, 9)
        pred = fit.predict(N=xs, D=other) if var == "N" else fit.predict(N=other, D=xs)
        # a fall of under 0.01% across the whole range is no fall: a degenerate fit to flat
        # losses (a huge exponent on a vanishing term) must not pass as a law
        falls = bool(np.all(np.diff(pred) < 0)) and bool(pred[0] / pred[-1] - 1.0 > 1e-4)
        how = f"L from {num(float(pred[0]))} to {num(float(pred[-1]))} over {var} = {si(lo)} .. {si(hi)}"
        checks.append(Check(f"loss falls with {var}", "ok" if falls else "fail", how))
    bad = [p for p in exps if not fit.params[p] > 0]
    checks.append(Check("exponents positive", "fail" if bad else "ok",
                        ", ".join(_with_ci(fit, p) for p in exps) if exps else "no exponents"))
    at_bound = bound_warnings(fit.params, fit.law_obj.bounds)
    checks.append(Check("no parameter at a bound", "fail" if at_bound else "ok",
                        "; ".join(at_bound) if at_bound else "every parameter inside its search box"))
    # A parameter on a bound is reported once, above; its relative error means nothing.
    hit = {w.split()[1] for w in at_bound}
    free = {p: v for p, v in fit.params.items() if p not in hit}
    loose = uncertainty_warnings(free, fit.stderr) + correlation_warnings(fit.meta.get("correl_centered") or {})
    if fit.samples is not None:
        for p in free:
            lo, hi = fit.ci.get(p, (None, None))
            v = fit.params[p]
            if lo is not None and hi is not None and v > 0 and p not in exps and hi > 10 * max(lo, 1e-300):
                loose.append(f"parameter {p} = {num(v)} spans more than a factor 10 over the bootstrap "
                             f"({num(lo)} .. {num(hi)})")
    checks.append(Check("every parameter identified", "warn" if loose else "ok",
                        "; ".join(loose) if loose else "standard errors small, no unidentifiable pair"))
    if points is not None and len(points):
        checks += _measured_checks(points)
    return checks


def _log_key(s: pd.Series) -> np.ndarray:
    """Sizes and budgets equal to 0.1% group together (the fits' rule for distinct values)."""
    return np.round(np.log(s.to_numpy(float)), 3)


def _measured_checks(points) -> list[Check]:
    by_d, by_n = [], []
    pts = points.assign(_n=_log_key(points["params"]), _d=_log_key(points["tokens"]))
    # Repeated measurements of one (N, D) (two runs reaching the same budget) are not a
    # trend: keep the best of each.
    pts = pts.loc[pts.groupby(["_n", "_d"])["loss"].idxmin()]
    for _, g in pts.groupby("_n"):
        g = g.sort_values("tokens")
        loss = g["loss"].to_numpy(float)
        for i in np.flatnonzero(np.diff(loss) >= 0):
            n, d0, d1 = float(g["params"].iloc[i]), float(g["tokens"].iloc[i]), float(g["tokens"].iloc[i + 1])
            by_d.append(f"N={si(n)}: {num(loss[i + 1])} at {si(d1)} tokens, not below {num(loss[i])} at {si(d0)}")
    for _, g in pts.groupby("_d"):
        if g["_n"].nunique() < 2:
            continue
        g = g.sort_values("params")
        loss = g["loss"].to_numpy(float)
        for i in np.flatnonzero(np.diff(loss) >= 0):
            by_n.append(f"at {si(float(g['tokens'].iloc[i]))} tokens N={si(float(g['params'].iloc[i + 1]))} has "
                        f"{num(loss[i + 1])}, not below N={si(float(g['params'].iloc[i]))}'s {num(loss[i])}")
    n_budgets = int(sum(g["_n"].nunique() >= 2 for _, g in pts.groupby("_d")))
    steps_d = int(sum(len(g) - 1 for _, g in pts.groupby("_n")))
    steps_n = int(sum(len(g) - 1 for _, g in pts.groupby("_d") if g["_n"].nunique() >= 2))
    return [
        _rising("measured loss falls with tokens in every run", by_d, steps_d, "tokens",
                f"{pts['_n'].nunique()} model sizes"),
        _rising("measured loss falls with size at every shared budget", by_n, steps_n, "size",
                f"{n_budgets} budgets shared by several sizes"),
    ]


#: items of a failed measured check shown before "... and K more"
_SHOWN = 4


def _rising(name: str, items: list[str], steps: int, what: str, ok: str) -> Check:
    """A few rises are noise (a WARN); loss rising in most steps is not a loss at all (a FAIL)."""
    if not items:
        return Check(name, "ok", ok)
    shown = "; ".join(items[:_SHOWN]) + (f"; ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
    if 2 * len(items) > steps:
        return Check(name, "fail", f"loss does not fall with {what} in {len(items)} of {steps} steps, so these are "
                                   f"not losses of training runs (another column, or a metric where higher is "
                                   f"better?): {shown}")
    return Check(name, "warn", shown)


def checks_text(checks: Sequence[Check]) -> str:
    """The checks as aligned text lines, one per check."""
    return "\n".join(c.line() for c in checks)


def checks_markdown(checks: Sequence[Check]) -> str:
    """The checks as a Markdown table (check, result, detail)."""
    from ..common.text import markdown_table

    return markdown_table([{"check": c.name, "result": c.status, "detail": c.detail} for c in checks])

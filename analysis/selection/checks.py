"""Self-checks every fitting command runs: is the table plausible, does the law say what a
scaling law must, and does the data reject the law's constraints?

Li et al. 2025 ("(Mis)fitting scaling laws") list what a fit must report; these checks
are the ones a table can answer. Each returns :class:`Check` lines
(``ok``, ``warn`` or ``fail``); :func:`self_checks` runs them all, failures first, and the
CLI prints them above any number (``--strict`` turns a failure into exit status 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..common.errors import InputError, ToolkitError
from ..common.text import markdown_table, num, si
from ..fitting.fit import fit_law
from ..fitting.result import LawFit, bound_warnings, correlation_warnings, uncertainty_warnings
from ..laws import LAWS, get_law
from ..laws.mix import is_mix
from .residual_trend import residual_trends, trend_text

__all__ = ["data_checks", "misspecification_checks", "self_checks", "ordered", "FLOP_FACTOR", "Check", "law_checks",
           "checks_text", "checks_markdown"]

#: A FLOP column this far from 6ND on a row is taken for a unit or counting mistake.
FLOP_FACTOR = 2.0
#: |z| of a constraint's Wald statistic above which the data reject it. Asymptotic standard
#: errors of a Huber fit run 1.6-3.5x below the bootstrap's (docs/analysis.md), so the bar
#: is higher than the usual 2.
REJECT_Z = 3.0

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

    return markdown_table([{"check": c.name, "result": c.status, "detail": c.detail} for c in checks])


_ORDER = {"fail": 0, "warn": 1, "ok": 2}


def ordered(checks: Sequence[Check]) -> list[Check]:
    """Failures first, then warnings, then passes; stable within each."""
    return sorted(checks, key=lambda c: _ORDER.get(c.status, 3))


#: The range of a plausible loss in nats per token (:func:`data_checks`).
LOSS_PLAUSIBLE = (0.1, 15.0)


def data_checks(points: pd.DataFrame) -> list[Check]:
    """Units and consistency of the table itself."""
    out = []
    N = points["params"].to_numpy(float)
    D = points["tokens"].to_numpy(float)
    tpp = D / N
    problems = []
    if np.min(D) < 1e3:
        problems.append(f"tokens as small as {num(float(np.min(D)))}: tokens given in millions or billions?")
    if np.min(tpp) < 1e-3:
        problems.append(f"{num(float(np.min(tpp)))} tokens per parameter on some rows: tokens in billions, "
                        "or parameters in units instead of counts?")
    if np.min(N) < 1e3:
        problems.append(f"models of {num(float(np.min(N)))} parameters: sizes given in millions or billions?")
    # a loss in nats per token lies above ~0.1 for any real text and below ln(vocabulary):
    # 13.9 for the largest vocabulary the trainer takes (2^20), so 15 leaves a margin
    L = points["loss"].to_numpy(float)
    if np.max(L) > LOSS_PLAUSIBLE[1]:
        problems.append(f"losses up to {num(float(np.max(L)))}, above ln(vocabulary) for any vocabulary up to 2^20 "
                        f"(at most {LOSS_PLAUSIBLE[1]:g} nats per token): losses multiplied by 100, or perplexities "
                        "instead of losses?")
    if np.min(L) < LOSS_PLAUSIBLE[0]:
        problems.append(f"losses as small as {num(float(np.min(L)))} (below {LOSS_PLAUSIBLE[0]:g} nats per token, "
                        "which no language model reaches on real text): losses divided by 1000, or another unit?")
    out.append(Check("units plausible", "fail" if problems else "ok",
                     "; ".join(problems) if problems else
                     f"N {si(float(N.min()))} .. {si(float(N.max()))}, D/N {num(float(tpp.min()), 3)} .. "
                     f"{num(float(tpp.max()), 3)}, loss {num(float(L.min()), 3)} .. {num(float(L.max()), 3)}"))
    if "flops" in points.columns and not _flops_derived(points):
        ratio = points["flops"].to_numpy(float) / (6.0 * N * D)
        off = np.flatnonzero((ratio > FLOP_FACTOR) | (ratio < 1 / FLOP_FACTOR))
        if len(off):
            rows = ", ".join(str(i + 1) for i in off[:5]) + (" ..." if len(off) > 5 else "")
            out.append(Check("FLOPs agree with 6ND", "fail",
                             f"{len(off)} of {len(points)} rows are more than {FLOP_FACTOR:g}x off 6ND "
                             f"(rows {rows}; ratio {num(float(ratio[off[0]]), 3)}): a FLOP column in other units, "
                             "or tokens and FLOPs from different runs?"))
        else:
            out.append(Check("FLOPs agree with 6ND", "ok",
                             f"flops / 6ND from {num(float(ratio.min()), 3)} to {num(float(ratio.max()), 3)}"))
    return out


def _flops_derived(points: pd.DataFrame) -> bool:
    """FLOPs the loader computed, or the trainer's own detailed count (run records): nothing to check."""
    notes = " ".join(points.attrs.get("notes", []))
    return "flops computed as" in notes or "point" in points.columns


@dataclass
class ConstraintTest:
    """The Wald test of a law's equality constraint (``law.equal``, e.g. Gadre et al.'s
    alpha = beta) in a fit of its parent law: ``z``, the difference over its standard error,
    and the ``threshold`` |z| must pass for the data to reject it, given how many independent
    ``units`` (runs; model sizes without a run column; points) the fit rests on."""

    z: float
    threshold: float
    units: int | None = None
    unit: str = ""

    @property
    def rejected(self) -> bool:
        return abs(self.z) > self.threshold

    @property
    def bar(self) -> str:
        """The threshold and what set it, in words."""
        if self.units is None:
            return f"beyond {self.threshold:.2g}"
        text = f"beyond {self.threshold:.2g} for {self.units} {self.unit}"
        if self.unit == "model sizes":
            text += ", each size's points counted as one run's for want of a run column"
        return text


def reject_threshold(units: int | None) -> float:
    """|z| beyond which a constraint is rejected: :data:`REJECT_Z`'s two-sided level read off
    Student's t with units - 1 degrees of freedom (a standard error estimated from few
    independent units is itself uncertain: Cameron and Miller 2015, Sec. VI), so 3.3 for 30
    runs and 6.6 for 5; :data:`REJECT_Z` when the units are not known; never below 2 units."""
    if units is None:
        return REJECT_Z
    if units < 2:
        return math.inf
    from scipy.stats import norm, t

    return float(t.isf(norm.sf(REJECT_Z), units - 1))


def constraint_test(free: LawFit, law) -> ConstraintTest | None:
    """The Wald test of ``law``'s equality constraint in ``free``, a fit of its parent law.
    The standard error of the difference is the larger of the model's (correlations
    included) and the cluster-robust one over the fit's independent units (points of one run
    share its training noise: ``free.meta["cluster_covariance"]``), and the bar is
    :func:`reject_threshold` for that many units. None without finite standard errors."""
    a, b = law.equal
    sa, sb = free.stderr.get(a), free.stderr.get(b)
    if sa is None or sb is None or not (math.isfinite(sa) and math.isfinite(sb)):
        return None
    r = (free.correl.get(a) or {}).get(b, 0.0)
    var = max(sa * sa + sb * sb - 2 * r * sa * sb, 1e-300)
    units = free.meta.get("units") or {}
    cov = free.meta.get("cluster_covariance")
    if cov is not None:
        names = list(get_law(free.law).params)
        g = np.zeros(len(names))
        g[names.index(a)], g[names.index(b)] = 1.0, -1.0
        var = max(var, float(g @ np.asarray(cov, float) @ g))
    count = units.get("count")
    return ConstraintTest(float((free.params[a] - free.params[b]) / math.sqrt(var)), reject_threshold(count), count,
                          units.get("unit", ""))


def misspecification_checks(fit, points) -> list[Check]:
    """For a law that constrains a more general one (Gadre et al.'s shared exponent inside
    Chinchilla's law), fit the general one and test the constraint with a Wald statistic on
    the constrained difference; reject above :data:`REJECT_Z`."""
    law = fit.law_obj
    if not law.parent or points is None:
        return []

    try:
        free = fit_law(points, law.parent, progress=False)
    except ToolkitError as e:
        return [Check(f"{law.name} constraint vs {law.parent}", "warn", f"the free law could not be fitted: {e}")]
    a, b = law.equal
    va, vb = free.params[a], free.params[b]
    name = f"{law.name}'s {a} = {b} against {law.parent}"
    test = constraint_test(free, law)
    if test is None:
        return [Check(name, "warn", f"{law.parent} gives {a} = {num(va)}, {b} = {num(vb)} without standard errors")]
    detail = (f"{law.parent} fits {a} = {num(va)} and {b} = {num(vb)}, {abs(test.z):.1f} standard errors apart "
              f"(the data reject it {test.bar}); objective {num(free.objective)} vs {num(fit.objective)}")
    edge = sorted(p for p, v in free.params.items() if bound_warnings({p: v}, get_law(law.parent).bounds))
    if edge:
        # standard errors of a fit that ends on a bound are not a test (--law auto sets such a
        # law aside for the same reason): no verdict, and no advice to prefer it
        return [Check(name, "warn", detail + f"; but {law.parent}'s own fit ends on a bound ({', '.join(edge)}), "
                      "so these points cannot test the shared exponent")]
    if test.rejected:
        return [Check(name, "warn", detail + f": the data reject the shared exponent, so {law.name}'s intervals "
                      f"are too narrow; prefer {law.parent} or --law auto")]
    return [Check(name, "ok", detail)]


def trend_checks(fit, points) -> list[Check]:
    """A V or a trend of the residuals against log N or log D: the law's form misses the data
    (:mod:`analysis.selection.residual_trend`, the test the residuals figure shows)."""

    trends = residual_trends(fit, points)
    if not trends:
        return []
    flagged = any(t.flagged for t in trends)
    text = trend_text(trends)
    for said in ("no systematic trend: ", "systematic bias: "):  # the check's name says it already
        text = text.removeprefix(said)
    return [Check("residuals show no systematic trend", "warn" if flagged else "ok", text)]


def self_checks(fit, points=None, fitted=None) -> list[Check]:
    """Every check a fitting command runs on ``fit`` (a LawFit of N and D) and its table,
    failures first. ``fitted``: the points the law was fitted to, when only some of the
    table's (the largest sizes, :mod:`analysis.selection.size_cuts`); the table itself is checked whole."""
    checks = []
    if points is not None and len(points):
        checks += data_checks(points)
    points = points if fitted is None else fitted
    law = getattr(fit, "law", None) if fit is not None else None
    if law is not None and (law in LAWS or is_mix(law)) and get_law(law).is_joint:
        checks += law_checks(fit, points)
        if not fit.is_published:
            checks += misspecification_checks(fit, points)
            if points is not None and len(points):
                checks += trend_checks(fit, points)
    if fit is not None and getattr(fit, "warnings", None) is not None and not getattr(fit, "is_published", True):
        # the fit's own warnings (thin design, failed refits) belong above its numbers too; those
        # another check already states are not repeated
        said = " ".join(c.detail for c in checks)
        rest = [w for w in fit.warnings if w not in said]
        checks.append(Check("the fit reports no other problems", "warn" if rest else "ok",
                            "; ".join(rest) if rest else "no warnings beyond the checks above"))
    return ordered(checks)

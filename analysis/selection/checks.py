"""Self-checks every fitting command runs: is the table plausible, does the law say what a
scaling law must, and does the data reject the law's constraints?

Li et al. 2025 ("(Mis)fitting scaling laws") list what a fit must report; these checks
are the ones a table can answer. Each returns :class:`analysis.reporting.overview.Check` lines
(``ok``, ``warn`` or ``fail``); :func:`self_checks` runs them all, failures first, and the
CLI prints them above any number (``--strict`` turns a failure into exit status 1).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..common.errors import TableError
from ..laws import LAWS, get_law
from ..laws.mix import is_mix
from ..reporting.overview import Check, law_checks
from ..common.text import num, si

__all__ = ["data_checks", "misspecification_checks", "self_checks", "ordered", "repeat_groups",
           "check_repeats", "REPEAT_RTOL", "FLOP_FACTOR"]

#: Points whose N and D agree to this relative tolerance are repeats of one measurement.
REPEAT_RTOL = 1e-6
#: A FLOP column this far from 6ND on a row is taken for a unit or counting mistake.
FLOP_FACTOR = 2.0
#: |z| of a constraint's Wald statistic above which the data reject it. Asymptotic standard
#: errors of a Huber fit run 1.6-3.5x below the bootstrap's (docs/analysis.md), so the bar
#: is higher than the usual 2.
REJECT_Z = 3.0

_ORDER = {"fail": 0, "warn": 1, "ok": 2}


def ordered(checks: Sequence[Check]) -> list[Check]:
    """Failures first, then warnings, then passes; stable within each."""
    return sorted(checks, key=lambda c: _ORDER.get(c.status, 3))


def repeat_groups(points: pd.DataFrame, rtol: float = REPEAT_RTOL) -> np.ndarray:
    """A label per row; rows with the same N and D (to ``rtol``) share one."""
    n = np.log(points["params"].to_numpy(float))
    d = np.log(points["tokens"].to_numpy(float))
    order = np.lexsort((d, n))
    labels = np.empty(len(n), dtype=int)
    g, prev = -1, None
    for i in order:
        if prev is None or abs(n[i] - n[prev]) > rtol or abs(d[i] - d[prev]) > rtol:
            g += 1
        labels[i] = g
        prev = i
    return labels


def check_repeats(points: pd.DataFrame, allow: bool = False) -> np.ndarray | None:
    """Refuse rows that repeat another row's N and D (to 1e-6) unless ``allow`` says they are
    seeds, or they carry different run names (separate runs reaching one budget). Returns the
    repeat labels when there are repeats, for the bootstrap to draw each group as one point."""
    labels = repeat_groups(points)
    if len(np.unique(labels)) == len(labels):
        return None
    if allow:
        return labels
    counts = np.bincount(labels)
    rows = np.flatnonzero(counts[labels] > 1)
    if "run" in points.columns:
        named = points["run"].astype(str).to_numpy()
        if all(len(set(named[labels == g])) == int(counts[g]) for g in np.unique(labels[rows])):
            return labels
    shown = ", ".join(str(i + 1) for i in rows[:6]) + (" ..." if len(rows) > 6 else "")
    raise TableError(f"{len(rows)} rows repeat another row's params and tokens to within {REPEAT_RTOL:g} "
                     f"(rows {shown}): the same measurement twice would shrink every interval", field="rows",
                     fix="drop the copies, or pass --allow-repeats (allow_repeats=True) if they are separate seeds")


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


def misspecification_checks(fit, points) -> list[Check]:
    """For a law that constrains a more general one (Gadre et al.'s shared exponent inside
    Chinchilla's law), fit the general one and test the constraint with a Wald statistic on
    the constrained difference; reject above :data:`REJECT_Z`."""
    law = fit.law_obj
    if not law.parent or points is None:
        return []
    from ..common.errors import ToolkitError
    from ..fitting.fit import fit_law

    try:
        free = fit_law(points, law.parent, progress=False)
    except ToolkitError as e:
        return [Check(f"{law.name} constraint vs {law.parent}", "warn", f"the free law could not be fitted: {e}")]
    a, b = law.equal
    va, vb = free.params[a], free.params[b]
    sa, sb = free.stderr.get(a), free.stderr.get(b)
    r = (free.correl.get(a) or {}).get(b, 0.0)
    name = f"{law.name}'s {a} = {b} against {law.parent}"
    if sa is None or sb is None or not (math.isfinite(sa) and math.isfinite(sb)):
        return [Check(name, "warn", f"{law.parent} gives {a} = {num(va)}, {b} = {num(vb)} without standard errors")]
    se = math.sqrt(max(sa * sa + sb * sb - 2 * r * sa * sb, 1e-300))
    z = (va - vb) / se
    detail = (f"{law.parent} fits {a} = {num(va)} and {b} = {num(vb)}, {abs(z):.1f} standard errors apart; "
              f"objective {num(free.objective)} vs {num(fit.objective)}")
    if abs(z) > REJECT_Z:
        return [Check(name, "warn", detail + f": the data reject the shared exponent, so {law.name}'s intervals "
                      f"are too narrow; prefer {law.parent} or --law auto")]
    return [Check(name, "ok", detail)]


def trend_checks(fit, points) -> list[Check]:
    """A V or a trend of the residuals against log N or log D: the law's form misses the data
    (:mod:`analysis.selection.residual_trend`, the test the residuals figure shows)."""
    from .residual_trend import residual_trends, trend_text

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

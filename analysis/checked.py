"""One checked fit: choose the law (``auto``: by backtest), fit it, and run every self-check.

This is what ``scaling fit``, ``scaling extrapolate`` and ``scaling report`` call, so the
three commands choose laws the same way and print the same checks, failures first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from .backtest import BacktestResult, LawChoice, backtest, select_law
from .checks import self_checks
from .overview import Check

__all__ = ["CheckedFit", "fit_checked", "checks_block", "checks_json", "AUTO"]

AUTO = "auto"


@dataclass
class CheckedFit:
    """A fit with the choice that led to it, its backtest and its self-checks."""

    fit: object
    choice: LawChoice | None = None
    backtest: BacktestResult | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def header_lines(self) -> list[str]:
        """What goes above any number: the auto choice, then failed and warned checks."""
        lines = [self.choice.reason] if self.choice is not None else []
        return lines + checks_block(self.checks, problems_only=True)

    def to_dict(self) -> dict:
        return {"choice": self.choice.to_dict() if self.choice else None,
                "backtest": self.backtest.to_dict() if self.backtest else None,
                "checks": checks_json(self.checks)}


def checks_block(checks: Sequence[Check], problems_only: bool = False) -> list[str]:
    """The checks as report lines; with ``problems_only`` the failed and warned ones, then a
    count of those that passed."""
    if not checks:
        return []
    shown = [c for c in checks if c.status != "ok"] if problems_only else list(checks)
    passed = sum(c.status == "ok" for c in checks)
    tail = [f"    {passed} of {len(checks)} checks passed (--json lists them all)"] if problems_only else []
    return ["[[Checks]]"] + [f"    {c.line()}" for c in shown] + tail


def checks_json(checks: Sequence[Check]) -> list[dict]:
    return [{"name": c.name, "status": c.status, "detail": c.detail} for c in checks]


def fit_checked(points: pd.DataFrame, law: str = AUTO, candidates: Sequence[str] | None = None,
                run_backtest: bool = False, allow_repeats: bool = False, **fit_options) -> CheckedFit:
    """Fit ``law`` (or, with ``auto``, the law :func:`analysis.backtest.select_law` picks) to
    ``points`` and run :func:`analysis.checks.self_checks` on the result.

    ``run_backtest`` keeps the backtest table (``auto`` always computes one). ``fit_options``
    go to :func:`analysis.fit.fit_law` (bootstrap, seed, n_jobs, level, resample, progress).
    """
    from .backtest import auto_candidates
    from .fit import check_points, fit_law

    check_points(points, law if law != AUTO else (candidates or auto_candidates(points))[0], allow_repeats)
    quiet = {k: v for k, v in fit_options.items() if k in ("n_starts", "delta")}
    choice, bt = None, None
    if law == AUTO:
        bt = backtest(points, laws=candidates, allow_repeats=allow_repeats, **quiet)
        choice = select_law(points, laws=candidates, result=bt)
        law = choice.law
    elif run_backtest:
        laws = tuple(candidates) if candidates else None
        bt = backtest(points, laws=laws, allow_repeats=allow_repeats, **quiet)
        if law not in bt.laws:
            bt = backtest(points, laws=tuple(bt.laws) + (law,), allow_repeats=allow_repeats, **quiet)
    fit = fit_law(points, law, allow_repeats=allow_repeats, **fit_options)
    return CheckedFit(fit, choice, bt if (run_backtest or choice is not None) else None, self_checks(fit, points))

"""Is a law's misfit systematic? An F-test of a quadratic trend in the residuals.

A law whose form is right leaves residuals that scatter around zero whatever the size or
budget; a V or an arch against log D (or log N) means the form misses the data, for
instance a floor or an exponent the fit could not bend to. The test regresses the log
residuals log(L / L_law) on a quadratic in the centred log of the variable and compares it
with a constant by the usual F statistic of nested least-squares models (e.g. Weisberg,
Applied Linear Regression, 4th ed., Sec. 6.1), so it catches a straight trend and a V alike.
Points of one run share its training noise, so the p-value is optimistic; read it as a flag.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Trend", "residual_trends", "trend_text", "TREND_ALPHA"]

#: Flag a trend below this p-value.
TREND_ALPHA = 0.05


@dataclass(frozen=True)
class Trend:
    variable: str  # "tokens" or "params"
    f: float
    p: float
    n: int

    @property
    def flagged(self) -> bool:
        return self.p < TREND_ALPHA

    @property
    def symbol(self) -> str:
        return "log D" if self.variable == "tokens" else "log N"


def _quadratic_f(x: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    x = (x - x.mean()) / (x.std() or 1.0)
    X = np.column_stack([np.ones_like(x), x, x * x])
    beta = np.linalg.lstsq(X, r, rcond=None)[0]
    rss1 = float(np.sum((r - X @ beta) ** 2))
    rss0 = float(np.sum((r - r.mean()) ** 2))
    dof = len(r) - 3
    if rss0 <= 1e-30:  # residuals all equal: nothing to trend
        return 0.0, 1.0
    if rss1 <= 1e-12 * rss0:  # an exact quadratic
        return float("inf"), 0.0
    f = ((rss0 - rss1) / 2.0) / (rss1 / dof)
    return float(f), float(stats.f.sf(f, 2, dof))


def residual_trends(fit, points) -> list[Trend]:
    """The quadratic-trend test of ``fit``'s log residuals on ``points`` against log D and
    against log N (each where the table holds at least 3 distinct values and 6 points)."""
    n_col = fit.n_column if fit.n_column in points.columns else "params"
    n = points[n_col].to_numpy(float)
    d = points["tokens"].to_numpy(float)
    r = np.log(points["loss"].to_numpy(float) / fit.predict(N=n, D=d))
    ok = np.isfinite(r)
    out = []
    for name, x in (("tokens", d), ("params", n)):
        x, rr = np.log(x[ok]), r[ok]
        if len(rr) < 6 or len(np.unique(np.round(x, 9))) < 3:
            continue
        f, p = _quadratic_f(x, rr)
        out.append(Trend(name, f, p, int(len(rr))))
    return out


def trend_text(trends: list[Trend]) -> str:
    """One line for a figure or a warning: the flagged trends, else that none was found."""
    flagged = [t for t in trends if t.flagged]
    if flagged:
        return "systematic bias: residuals trend with " + " and ".join(
            f"{t.symbol} (quadratic F-test p = {t.p:.2g})" for t in flagged) + "; the law's form misses the data"
    if not trends:
        return "too few points to test the residuals for a trend"
    return "no systematic trend: " + ", ".join(f"{t.symbol} p = {t.p:.2g}" for t in trends) + \
        f" (quadratic F-test, flagged below {TREND_ALPHA:g})"

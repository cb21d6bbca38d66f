"""The figure of repeated data (Muennighoff et al. 2023): what epochs over a fixed set of
unique tokens are worth, under a data-constrained law. Re-exported by :mod:`analysis.reporting.plots`."""
from __future__ import annotations

import numpy as np

from ..common.errors import InputError
from ..common.text import sci, si
from ..extrapolation.extrapolate import _unique_tokens, with_data_limit
from ..fitting.result import LawFit
from ..laws.muennighoff import effective_data
from .figure_style import colors as _colors, plain_y as _plain_y

__all__ = ["plot_repetition", "default_unique_tokens"]


def default_unique_tokens(points) -> float | None:
    """The median unique-token budget of a table with a ``unique_tokens`` column, else None."""
    if points is None or "unique_tokens" not in getattr(points, "columns", ()):
        return None
    return float(np.median(points["unique_tokens"].to_numpy(float)))


def plot_repetition(fit: LawFit, unique_tokens: float | None = None, compute=None, points=None,
                    max_epochs: float = 100.0):
    """Two panels for a law of the unique tokens U (a law without one gets Muennighoff et
    al. 2023's published decay terms, :func:`analysis.extrapolation.extrapolate.with_data_limit`):

    * left, loss against epochs at fixed compute: for each budget C the run repeats U
      unique tokens e times, so D = e U and N = C / (6 D); solid is the law with repetition,
      dashed the same (N, D) on fresh tokens. The gap is what repetition costs.
    * right, the effective data D'/U against epochs D/U for the fitted R_D* (Muennighoff
      et al. 2023, Sec. 3), with fresh data (D' = D) and the ceiling 1 + R_D* it tends to;
      with bootstrap draws, their 5-95% band.

    ``unique_tokens`` defaults to the median of ``points``' ``unique_tokens`` column;
    ``compute`` to three budgets, 1, 10 and 100 times the one at which one epoch over U is
    20 tokens per parameter (Hoffmann et al. 2022's rule of thumb): the larger ones want
    many epochs, where repetition shows.
    """

    if not isinstance(fit, LawFit):
        raise InputError(f"expected a LawFit, got {type(fit).__name__}", field="fit",
                         fix="pass the result of analysis.fitting.fit.fit_law or analysis.data.published.published_law")
    fit.law_obj.check_joint()
    U = unique_tokens if unique_tokens is not None else default_unique_tokens(points)
    if U is None:
        raise InputError("no unique-token budget to draw", field="unique_tokens",
                         fix="give unique_tokens (--unique-tokens 1e9), or a table with a unique_tokens column")
    U = _unique_tokens(U)
    lim = with_data_limit(fit)
    law = lim.law_obj
    if "R_D_star" not in lim.params:
        raise InputError(f"law {lim.law!r} has no effective-data constant R_D*", field="law",
                         fix="use data_constrained or a decay law (analysis.laws.decay_law)")
    c0 = 6.0 * U * U / 20.0
    budgets = np.atleast_1d(np.asarray(compute if compute is not None else [c0, 10 * c0, 100 * c0], dtype=float))
    epochs = np.geomspace(1.0, float(max_epochs), 200)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.5, 5.0), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    lows, highs = [], []
    for c, color in zip(budgets, _colors(len(budgets))):
        D = epochs * U
        N = c / (6.0 * D)
        rep = law.loss(lim.params, N, D, U)
        fresh = law.loss(lim.params, N, D)
        label = f"C = {sci(c)} FLOPs"
        ax.plot(epochs, rep, "-", color=color, lw=2, label=label + ", repeated", gid=f"repeated:{c:g}")
        ax.plot(epochs, fresh, "--", color=color, lw=1.4, label=label + ", fresh tokens", gid=f"fresh:{c:g}")
        i = int(np.argmin(rep))
        ax.plot([epochs[i]], [rep[i]], "o", color=color, ms=6, gid=f"best:{c:g}")
        lows.append(float(min(rep.min(), fresh.min())))
        highs.append(float(rep[0]))
    # tiny models at many epochs run off the top: keep the minima and the one-epoch values in view
    lo, hi = min(lows), max(highs + [min(lows) + 0.3])
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.35 * (hi - lo))
    ax.set_xscale("log")
    ax.set_xlabel(f"epochs over U = {si(U)} unique tokens (D = epochs x U, N = C / 6D)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"Loss at fixed compute, {lim.name or lim.law}")
    _plain_y(ax)
    ax.grid(True, which="both", alpha=0.25)
    # below the panel: inside it the legend would cover the small budgets' curves
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False, columnspacing=1.0,
              handlelength=1.8)
    ax.text(0.02, 0.02, "dots: the best number of epochs at each budget", transform=ax.transAxes, fontsize=8)

    rd = lim.params["R_D_star"]

    epochs = np.geomspace(1.0, max(float(max_epochs), 10.0 * (1 + rd)), 200)
    ax2.plot(epochs, epochs, ":", color="0.4", lw=1.4, label="fresh tokens, D' = D", gid="fresh-data")
    ax2.plot(epochs, effective_data(epochs * U, U, rd) / U, "-", color="C3", lw=2.2,
             label=f"repeated, R_D* = {rd:.3g}", gid="effective-data")
    ax2.axhline(1 + rd, color="C3", lw=1, ls="--", alpha=0.7, gid="ceiling")
    ax2.annotate(f"ceiling 1 + R_D* = {1 + rd:.3g}", (epochs[-1], (1 + rd) * 0.8), fontsize=9, color="C3",
                 ha="right", va="top")
    draws = lim.sample_params()
    if draws:
        curves = np.array([effective_data(epochs * U, U, p["R_D_star"]) / U for p in draws])
        lo, hi = np.nanpercentile(curves, [5, 95], axis=0)
        ax2.fill_between(epochs, lo, hi, color="C3", alpha=0.2, lw=0, gid="band:effective-data",
                         label=f"5-95% over {len(draws)} bootstrap draws")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("epochs D / U")
    ax2.set_ylabel("effective data D' / U (in epochs of fresh tokens)")
    ax2.set_title("Effective data (Muennighoff et al. 2023)")
    ax2.grid(True, which="both", alpha=0.25)
    ax2.legend(fontsize=8, loc="upper left")
    ax2.set_ylim(0.8, (1 + rd) * 3)
    return fig

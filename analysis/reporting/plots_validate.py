"""The figure of ``scaling validate``: the headline answer, tokens to match, predicted from a
fit that never saw the long runs, against where those runs measure it. Re-exported by
:mod:`analysis.reporting.plots`.

Each drawn element carries a ``gid`` (``pair:SMALL->LARGE``, ``interval:SMALL->LARGE``,
``ratio:…``, ``ratio-interval:…``), so that tests can check that every marker sits on its
value.
"""
from __future__ import annotations

import math

import numpy as np

from ..common.text import si
from .figure_style import colors, legend_outside, log_axis

__all__ = ["plot_tokens_backtest"]

#: the band the tokens-to-match backtest is judged against (docs/analysis.md): a predicted
#: answer within a factor 1.25 either way of the measured one
RATIO_BAND = (0.8, 1.25)


def _name(p) -> str:
    return f"{si(p.small)}->{si(p.large)}"


def plot_tokens_backtest(result):
    """Two panels for a :class:`analysis.extrapolation.validate.TokensBacktest`, one marker per
    pair whose smaller model's runs measure an answer and whose law predicts one:

    * left, predicted against measured tokens to match, on log axes, with the
      ``result.level`` interval as a vertical bar (an arrow where it has no upper end): on
      the diagonal the law is right; inside the dotted band within a factor 1.25;
    * right, predicted / measured against the measured answer's tokens per parameter of the
      smaller model, with the fitted range's end (``result.max_tpp``) marked: how the error
      grows as the answer lies further beyond the runs the fit saw.

    Filled markers lie inside their interval, hollow ones outside. Pairs the law says never
    match, and pairs no run measured, are counted in the title, not drawn.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    fig = Figure(figsize=(11.0, 4.6), layout="constrained")
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    drawn = [p for p in result.pairs if p.measured_tokens is not None and p.ratio is not None]
    never = [p for p in result.pairs if p.measured_tokens is not None and p.never]
    smalls = sorted({p.small for p in drawn})
    palette = dict(zip(smalls, colors(len(smalls))))
    span = [v for p in drawn for v in (p.measured_tokens, p.predicted_tokens, p.low, p.high)
            if v is not None and math.isfinite(v) and v > 0]
    top = max(span) * 3.0 if span else 1.0
    labelled = set()
    for p in drawn:
        c, name = palette[p.small], _name(p)
        face = c if p.inside is not False else "white"
        label = f"smaller model {si(p.small)}" if p.small not in labelled else None
        labelled.add(p.small)
        x, y = p.measured_tokens, p.predicted_tokens
        left.plot([x], [y], "o", color=c, mfc=face, ms=7, mew=1.5, zorder=3, label=label, gid=f"pair:{name}")
        right.plot([x / p.small], [p.ratio], "o", color=c, mfc=face, ms=7, mew=1.5, zorder=3,
                   gid=f"ratio:{name}")
        if p.low is not None:
            hi = p.high if p.high is not None and math.isfinite(p.high) else top
            left.plot([x, x], [p.low, hi], "-", color=c, lw=1.2, alpha=0.7, gid=f"interval:{name}")
            right.plot([x / p.small] * 2, [p.low / x, hi / x], "-", color=c, lw=1.2, alpha=0.7,
                       gid=f"ratio-interval:{name}")
            if hi == top:  # no upper end: the interval runs to never, drawn to an arrow in both panels
                left.plot([x], [top], "^", color=c, ms=6, gid=f"open:{name}")
                right.plot([x / p.small], [top / x], "^", color=c, ms=6, gid=f"open-ratio:{name}")
        left.annotate(name, (x, y), xytext=(6, -10), textcoords="offset points", fontsize=7, color=c)
    if drawn:
        lo = min(span) / 2.0
        grid = np.array([lo, top])
        left.plot(grid, grid, "-", color="black", lw=0.8, label="predicted = measured")
        left.fill_between(grid, grid * RATIO_BAND[0], grid * RATIO_BAND[1], color="grey", alpha=0.15, lw=0,
                          label=f"within {RATIO_BAND[0]:g}x-{RATIO_BAND[1]:g}x")
        left.set_xlim(lo, top)
        left.set_ylim(lo, top * 1.3)
        right.axhline(1.0, color="black", lw=0.8)
        right.axhspan(*RATIO_BAND, color="grey", alpha=0.15, lw=0)
    right.axvline(result.max_tpp, color="black", ls="--", lw=0.8, label=f"fitted up to {result.max_tpp:g}")
    for ax, xl, yl in ((left, "measured tokens to match", "predicted tokens to match"),
                       (right, "measured answer, tokens per parameter of the smaller model",
                        "predicted / measured")):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(True, which="major", alpha=0.3)
    log_axis(left, "x")
    log_axis(left, "y")
    right.set_xscale("log")
    right.set_yscale("log")
    right.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    right.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    right.xaxis.set_minor_formatter(NullFormatter())
    # ratios labelled where a reader looks: the band's ends, 1x and round factors
    right.yaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.33, 0.5, 0.8, 1.0, 1.25, 2.0, 3.0, 5.0, 10.0, 100.0]))
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    right.yaxis.set_minor_formatter(NullFormatter())
    s = result.summary()
    head = (f"Tokens to match, backtested ({result.law}; the fit saw runs up to {result.max_tpp:g} tokens per "
            f"parameter): {s['inside']} of {s['with_interval']} inside the {100 * result.level:g}% interval")
    if s["median_ratio"] is not None:
        head += f", median predicted/measured {s['median_ratio']:.2f}x"
    if never:
        head += f"; {len(never)} measured pair(s) the law says never match, not drawn"
    fig.suptitle(head, fontsize=9)
    handles, labels = left.get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", ls="", color="grey", mfc="grey"),
                Line2D([], [], marker="o", ls="", color="grey", mfc="white")]
    labels += [f"inside its {100 * result.level:g}% interval", "outside it"]
    more, more_labels = right.get_legend_handles_labels()
    legend_outside(right, handles + more, labels + more_labels, fontsize=8)
    return fig

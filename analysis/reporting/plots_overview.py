"""Figures of a whole sweep and of each run alone: every run's loss against tokens or
compute with the compute-efficient frontier, and each run's own curve extrapolated.
Re-exported by :mod:`analysis.reporting.plots`."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..common.errors import InputError
from ..common.text import model_label, si
from ..extrapolation.specs import model_names
from .figure_style import (colors as _colors, finish_loss_axes, flops_label, log_axis, mark_answers, new_figure,
                           separate_markers)
from .overview import compute_frontier

__all__ = ["plot_runs", "plot_own_curves", "frontier_wins"]


def _run_x(df, x: str) -> np.ndarray:
    """Tokens, or training compute counted as 6ND (Kaplan et al. 2020, Sec. 2.1) like the
    extrapolation and the IsoFLOP profiles, so every figure shares one compute axis."""
    d = df["tokens"].to_numpy(float)
    return d if x == "tokens" else 6.0 * df["params"].to_numpy(float) * d


def frontier_wins(frontier) -> list[tuple[float, float, float]]:
    """The compute range each size holds the frontier (``compute_frontier``'s rows): a list of
    (params, C from, C to), one per stretch in compute order, each ending where the next
    size's first frontier point is, the last at the frontier's largest compute. A size can
    hold several stretches."""
    rows = frontier.sort_values("flops")
    n, c = rows["params"].to_numpy(float), rows["flops"].to_numpy(float)
    if not len(n):
        return []
    starts = [0] + [i for i in range(1, len(n)) if n[i] != n[i - 1]]
    # a size holds the (stepped) frontier until the next size's first point beats it
    ends = starts[1:] + [len(n) - 1]
    return [(float(n[s]), float(c[s]), float(c[e])) for s, e in zip(starts, ends)]


def plot_runs(points=None, curves: Mapping | None = None, x: str = "tokens", frontier: bool | None = None):
    """Loss of every run of a sweep against training tokens (``x="tokens"``) or training
    compute C = 6ND (``x="flops"``), on log axes.

    Each run's logged validation curve (``curves``: run -> DataFrame with ``params``,
    ``tokens``, ``loss``, as :func:`analysis.extrapolation.extrapolate.measured_curves` returns) is a solid
    line coloured by model size; the measured points (each run's final point and its WSD
    cooldown branches) are circles. With ``frontier`` (the default against compute) the
    compute-efficient frontier, the measurements no cheaper one beats (Kaplan et al. 2020,
    Sec. 6.1; :func:`analysis.reporting.overview.compute_frontier`), is drawn as a thick grey line, and
    a strip along the bottom shows in each size's colour the compute range it holds the
    frontier (:func:`frontier_wins`).
    """
    from matplotlib.transforms import blended_transform_factory


    if x not in ("tokens", "flops"):
        raise InputError(f"unknown x axis {x!r}", field="x", fix="use 'tokens' or 'flops'")
    frontier = (x == "flops") if frontier is None else bool(frontier)
    if frontier and x != "flops":
        raise InputError("the compute-efficient frontier is drawn against compute", field="frontier",
                         fix="use x='flops', or frontier=False")
    has_points = points is not None and len(points) > 0
    curves = {str(k): v for k, v in (curves or {}).items() if v is not None and len(v)}
    if not has_points and not curves:
        raise InputError("nothing to plot", field="points", fix="point at a sweep with finished runs")
    sizes = {float(c["params"].iloc[0]) for c in curves.values()}
    if has_points:
        sizes |= {float(n) for n in points["params"].unique()}
    sizes = sorted(sizes)
    colors = dict(zip(sizes, _colors(len(sizes))))
    names = model_names(points)
    fig, ax = new_figure()
    labelled: set = set()
    for run, df in sorted(curves.items(), key=lambda kv: (float(kv[1]["params"].iloc[0]), kv[0])):
        n = float(df["params"].iloc[0])
        d = df[np.isfinite(df["loss"].to_numpy(float))].sort_values("tokens")
        ax.plot(_run_x(d, x), d["loss"], "-", color=colors[n], lw=1.1, alpha=0.85,
                label=None if n in labelled else model_label(n, names.get(n), "N="), gid=f"run:{run}")
        labelled.add(n)
    if has_points:
        for n in sizes:
            sub = points[points["params"] == n].sort_values("tokens")
            if len(sub):
                ax.plot(_run_x(sub, x), sub["loss"], "o", color=colors[n], ms=5, mec="k", mew=0.4,
                        label=None if n in labelled else model_label(n, names.get(n), "N="), gid=f"points:N={si(n)}")
                labelled.add(n)
    title = f"Loss vs {'tokens' if x == 'tokens' else 'compute'}: logged validation curves (lines), final and " \
            "cooldown-branch points (circles)"
    if frontier:
        fr = compute_frontier(points if has_points else None, curves)
        ax.plot(fr["flops"], fr["loss"], "-", color="0.3", lw=3.0, alpha=0.45, zorder=0, drawstyle="steps-post",
                label="compute-efficient frontier", gid="frontier")
        strip = blended_transform_factory(ax.transData, ax.transAxes)
        won: set = set()
        for i, (n, c0, c1) in sorted(enumerate(frontier_wins(fr)), key=lambda t: (t[1][0], t[0])):  # legend by size
            if c1 <= c0:  # a size holding the frontier at its last point only: a sliver at its compute
                c0, c1 = c0 / 1.02, c0 * 1.02
            ax.fill_between([c0, c1], [0.0, 0.0], [0.035, 0.035], transform=strip, color=colors.get(n, "0.4"),
                            lw=0, label=None if n in won else f"{model_label(n, names.get(n), 'N=')} on the frontier (bottom strip)",
                            gid=f"wins:N={si(n)}:{i}")
            won.add(n)
        title += "\nbottom strip: which size holds the frontier over each compute range"
    xlabel = "training tokens D" if x == "tokens" else "training compute C = 6ND (FLOPs)"
    finish_loss_axes(ax, title, xlabel=xlabel, ylabel="validation loss (nats/token)", fontsize=9)
    if x == "flops":
        log_axis(ax, "x", fmt=flops_label)
    if frontier:  # room below the lowest loss, so that the strip covers no data
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo / (hi / lo) ** 0.06, hi)
    return fig


def plot_own_curves(study, n_grid: int = 120):
    """Each smaller model's own run, extrapolated alone: its measured validation loss
    (solid) and its stable-phase fit L(D) = E + B / D^beta (dotted; the data term of
    Hoffmann et al. 2022, eq. 2, at fixed N) out to the tokens it would see with the
    target's compute (square) and to where it reaches the target's loss (star) when that
    lies within 100x; the fit's bootstrap interval as a band where it has draws. A star
    that would sit on another model's curve or star is moved aside, with a leader line to
    its place. The counterpart of :func:`analysis.reporting.plots.plot_curves` without the joint law."""
    result = study.result
    fits = dict(study.curve_fits or {})
    if not fits:
        raise InputError("no per-run curve fits to plot", field="curves",
                         fix="use run records with logged validation losses (run_study(..., curves=True))")
    target = result.target
    answers = {m.params: m for m in result.models}
    sizes = sorted(set(fits) | {float(c["params"].iloc[0]) for c in (study.curves or {}).values() if len(c)})
    colors = dict(zip(sizes, _colors(len(sizes))))
    names = model_names(study.points)
    fig, ax = new_figure()
    seen: dict = {}
    lines_of: dict = {}
    for run, df in sorted((study.curves or {}).items(), key=lambda kv: (float(kv[1]["params"].iloc[0]), kv[0])):
        n = float(df["params"].iloc[0])
        d = df[np.isfinite(df["loss"].to_numpy(float))].sort_values("tokens")
        if not len(d):
            continue
        lines_of.setdefault(n, []).extend(ax.plot(d["tokens"], d["loss"], "-", color=colors.get(n, "0.4"), lw=1.2,
                                                  label=None if n in seen else f"{model_label(n, names.get(n), 'N=')} measured",
                                                  gid=f"measured:{run}"))
        lo, hi = seen.get(n, (math.inf, 0.0))
        seen[n] = (min(lo, float(d["tokens"].min())), max(hi, float(d["tokens"].max())))
    markers, banded = [], 0
    for n, cf in sorted(fits.items()):
        ans = answers.get(n)
        if ans is None:
            continue  # the target itself: its curve is drawn, there is nothing to extrapolate
        own = ans.curve or {}
        lo_d, hi_d = seen.get(n, (float(cf.data_range.get("D", (1.0, 10.0))[0]), 0.0))
        hi_d = max(hi_d, own.get("tokens_at_target_compute") or 0.0, lo_d * 10)
        cross = own.get("tokens_to_match")
        if cross is not None and cross <= 100 * hi_d:
            hi_d = max(hi_d, cross * 1.2)
        grid = np.logspace(math.log10(lo_d), math.log10(hi_d), n_grid)
        c = colors.get(n, "0.4")
        lines_of.setdefault(n, []).extend(ax.plot(grid, cf.predict(D=grid), ":", color=c, lw=1.6,
                                                  label=f"{model_label(n, names.get(n), 'N=')} own curve fit", gid=f"own-fit:N={si(n)}"))
        iv = cf.predict_interval(D=grid) if cf.samples is not None else None
        if iv is not None:
            banded += 1
            ax.fill_between(grid, iv[0], iv[1], color=c, alpha=0.15, lw=0, gid=f"band:N={si(n)}",
                            label=f"{100 * cf.ci_level:.0f}% bootstrap band" if banded == 1 else None)
        markers += [(n, m) for m in mark_answers(fig, ax, n, c, own.get("tokens_at_target_compute"),
                                                 own.get("loss_at_target_compute"), cross, target.loss, grid[-1],
                                                 names.get(n))]
    what = f"target {target.name}" if target.params is not None else "target"
    ax.axhline(target.loss, color="0.15", lw=1.0, ls="--", label=f"{what} loss {target.loss:.4g}", gid="target")
    title = "Each run's own curve, extrapolated: measured (solid), E + B/D^beta (dotted)"
    title += ", bootstrap band shaded" if banded else "\nno band: the own-curve fits carry no bootstrap draws"
    finish_loss_axes(ax, title, fontsize=9)
    separate_markers(fig, ax, [m for _, m in markers],
                     avoid={m: [ln for k, lns in lines_of.items() if k != n for ln in lns] for n, m in markers})
    return fig

"""Figures for scaling studies: loss curves with their extrapolations, IsoFLOP profiles, fit residuals.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so no
global figure state leaks between calls and any backend-less process can render it.
Each drawn element carries a ``gid`` (``measured:…``, ``fit:…``, ``band:…``,
``cross:…``, ``target``, ``isoflop-fit:…``, ``residual:…``, ``run:…``, ``points:…``,
``frontier``, ``own-fit:…``) so that tests and notebooks
can find curves by meaning instead of by pixel. :func:`save_figure` writes PNG, SVG or
PDF atomically, the format taken from the file name.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Mapping

import numpy as np

from ..common.errors import InputError
from ..common.records import atomic_write_bytes, check_output
from ..common.text import model_label, sci, si
from ..extrapolation.specs import model_names
from ..fitting.result import LawFit
from ..selection.residual_trend import residual_trends, trend_text
from .figure_style import (colors as _colors, finish_loss_axes as _finish_loss_axes, gids, legend_outside, log_axis,
                           mark_answers as _mark_answers, new_figure as _figure, separate_markers)
from .plots_overview import plot_own_curves, plot_runs
from .plots_repetition import plot_repetition
from .plots_validate import plot_tokens_backtest

__all__ = ["plot_curves", "plot_isoflop", "plot_residuals", "plot_study", "plot_runs", "plot_own_curves", "save_figure",
           "figure_bytes", "FIGURE_FORMATS", "PLOT_KINDS", "EXTRA_KINDS", "gids", "plot_repetition", "check_figure_output",
           "plot_tokens_backtest"]

FIGURE_FORMATS = ("png", "svg", "pdf")
PLOT_KINDS = ("curves", "isoflop", "residuals")
#: Kinds drawn only when asked for by name (not part of ``--kind all``).
EXTRA_KINDS = ("repetition",)
#: Points whose FLOPs lie within this factor of each other share an IsoFLOP budget.
ISOFLOP_TOLERANCE = 1.15
#: Sizes per budget below which an IsoFLOP profile is the law's, not a measured one: Hoffmann
#: et al. 2022 (Sec. 3.2, Fig. 3) fit a parabola to each profile, which takes a few sizes
#: either side of the minimum.
ISOFLOP_MIN_SIZES = 4


def _sizes(points, result) -> list[float]:
    sizes = set()
    if points is not None and len(points):
        sizes |= {float(n) for n in points["params"].unique()}
    if result is not None:
        sizes |= {m.params for m in result.models}
        if result.target.params is not None:
            sizes.add(float(result.target.params))
    return sorted(sizes)


def _law_sizes(points, result, fit) -> dict[float, float]:
    """Each model's size as drawn (total parameters) -> the size at which the law is
    evaluated: the non-embedding count for a law fitted on it (Kaplan et al. 2020), taken
    from the extrapolation's answers or the points table. Sizes not listed are the same."""
    ncol = fit.n_column if fit is not None else "params"
    out: dict[float, float] = {}
    if ncol == "params":
        return out
    if points is not None and len(points) and ncol in points.columns:
        for n, g in points.groupby("params"):
            out[float(n)] = float(g[ncol].astype(float).mean())
    if result is not None:
        for m in result.models:
            if m.law_params is not None:
                out[m.params] = m.law_params
        if result.target.params is not None and result.target.law_params is not None:
            out[result.target.params] = result.target.law_params
    return out


def _fitted_tpp(fit, n: float) -> tuple[float, float] | None:
    """The tokens per parameter the fit saw at size ``n`` (None: no record of it)."""
    by_size = (fit.meta.get("tokens_per_param_by_size") or {}) if fit is not None and not fit.is_published else {}
    for k, v in by_size.items():
        if abs(float(k) / n - 1) < 1e-5:
            return float(v[0]), float(v[1])
    return None


def plot_curves(points=None, fit: LawFit | None = None, result=None, curves: Mapping | None = None,
                bands: bool = True, n_grid: int = 120):
    """Loss against training tokens per model size, on log axes.

    Measured data are solid: each run's own loss curve from ``curves`` (run -> DataFrame with
    ``params``, ``tokens``, ``loss``) when given, else the final points of each size joined
    up; the fitted points (``points``) are circles. The law's curve L(N, D) starts where its
    fit saw that model, at the smallest fitted D of that size, not at the first logged step:
    below it the law describes nothing it was fitted on. It is dashed over that model's
    fitted budgets and dotted beyond them, where extrapolation starts (marked with a tick),
    out to the tokens the model would get with the target's compute (``result``, an
    ExtrapolationResult) and on to where it crosses the target's loss (marked) when that
    lies within 100x. A model the fit never saw is extrapolated from the fitted data's
    token range on; a published law is drawn dashed from each model's smallest measured D,
    as it was fitted on other data. The target loss is a horizontal line, and a model that
    never reaches it gets its floor L(N, D -> inf) as a dash-dotted line: the reason it
    never catches up. Bootstrap intervals of the law are shaded bands. Answer markers that
    would cover each other are moved apart, with a leader to their place. The title says
    only what is drawn: no "measured" without measured data, no "dotted" without an
    extrapolated segment.
    """
    if fit is None and result is not None:
        fit = result.law
    fig, ax = _figure()
    sizes = _sizes(points, result)
    if not sizes:
        raise InputError("nothing to plot", field="points", fix="give a table of points or an extrapolation result")
    colors = dict(zip(sizes, _colors(len(sizes))))
    names = model_names(points)
    target = result.target if result is not None else None
    answers = {m.params: m for m in result.models} if result is not None else {}
    law_n = _law_sizes(points, result, fit)
    has_points = points is not None and len(points) > 0
    curve_sizes = set()
    lines_of: dict[float, list] = {n: [] for n in sizes}
    ordered = sorted(((float(df["params"].iloc[0]), str(run), df) for run, df in (curves or {}).items()
                      if df is not None and len(df)), key=lambda x: (x[0], x[1]))
    for _, run, df in ordered:
        n = float(df["params"].iloc[0])
        d = df[np.isfinite(df["loss"])].sort_values("tokens")
        label = None if n in curve_sizes else f"{model_label(n, names.get(n), 'N=')} measured"
        lines_of.setdefault(n, []).extend(ax.plot(d["tokens"], d["loss"], "-", color=colors.get(n, "0.4"), lw=1.2,
                                                  alpha=0.9, label=label, gid=f"measured:{run}"))
        curve_sizes.add(n)
    fitted_d = (fit.data_range.get("D") if fit is not None and not fit.is_published else None)
    # sizes below the fitted range were left out of the fit (a size cut, analysis.selection.size_cuts)
    fitted_n = fit.data_range.get("N") if fit is not None and not fit.is_published else None
    markers, floors, legend_kinds = [], [], set()
    for n in sizes:
        c = colors[n]
        own = points[points["params"] == n] if has_points else None
        unfitted = own is not None and len(own) and fitted_n is not None and law_n.get(n, n) < fitted_n[0] * (1 - 1e-6)
        # the tokens per parameter the fit saw at this size (its shorter runs were set aside)
        seen = _fitted_tpp(fit, law_n.get(n, n)) if own is not None and len(own) and not unfitted else None
        if own is not None and len(own) and n not in curve_sizes:
            sub = own.sort_values("tokens")
            what = "measured, not fitted" if unfitted else "measured"
            lines_of[n] += ax.plot(sub["tokens"], sub["loss"], "o-", color=c, ms=4, lw=1.2,
                                   mfc="white" if unfitted else c,
                                   label=f"{model_label(n, names.get(n), 'N=')} {what}",
                                   gid=f"{'unfitted' if unfitted else 'measured'}:N={si(n)}")
        elif own is not None and len(own):
            # the curves are the stable phase; the points the law was fitted to (final and
            # cooldown-branch losses) lie below them and are what the dashed law follows
            kind = "unfitted-points:" if unfitted else "points:"
            first = not gids(fig, kind)
            sub = own.sort_values("tokens")
            if seen is not None:
                # runs shorter than those fitted at this size were set aside (too few tokens per parameter)
                short = (sub["tokens"] / law_n.get(n, n)) < seen[0] * (1 - 1e-6)
                if short.any():
                    first_short = not gids(fig, "short-points:")
                    ax.plot(sub["tokens"][short], sub["loss"][short], "o", color=c, ms=4.5, mec=c, mew=0.9, ls="none",
                            mfc="white", label="set aside: too few tokens per parameter" if first_short else None,
                            gid=f"short-points:N={si(n)}")
                    sub = sub[~short]
            what = ("points left out of the fit (below the size cut)" if unfitted
                    else "fitted points (final and cooldown-branch losses)")
            if len(sub):
                ax.plot(sub["tokens"], sub["loss"], "o", color=c, ms=4.5, mec="k", mew=0.4, ls="none",
                        mfc="white" if unfitted else c, label=what if first else None, gid=f"{kind}N={si(n)}")
        if fit is None:
            continue
        if seen is not None:
            # where the fit saw this size: its short runs, set aside, are not on the law
            lo_d, edge = min(seen[0] * law_n.get(n, n), float(own["tokens"].max())), float(own["tokens"].max())
            if lo_d >= edge * (1 - 1e-9):
                lo_d = edge  # one fitted budget (the float product may miss it by an ulp)
        elif own is not None and len(own):
            lo_d, edge = float(own["tokens"].min()), float(own["tokens"].max())
        elif fitted_d is not None:
            lo_d, edge = float(fitted_d[0]), float(fitted_d[1])
        else:
            lo_d = (target.tokens / 100 if target is not None and target.tokens else 1e9)
            edge = None
        if fit.is_published:
            edge = None  # fitted on other data: there is no fitted range here to leave
        elif unfitted:
            edge = lo_d  # the law never saw this size: all of its curve is extrapolation
        # At least a decade, so a model seen at one budget (or none) still gets a curve.
        hi_d = edge if edge is not None and edge > lo_d else lo_d * 10
        ans = answers.get(n)
        if ans is not None and ans.tokens_at_target_compute:
            hi_d = max(hi_d, ans.tokens_at_target_compute)
        if target is not None and target.params == n and target.tokens:
            hi_d = max(hi_d, target.tokens)
        cross = ans.tokens_to_match if ans is not None else None
        if cross is not None and cross <= 100 * hi_d:
            hi_d = max(hi_d, cross * 1.2)
        grid = np.logspace(math.log10(lo_d), math.log10(hi_d), n_grid)
        grid[0], grid[-1] = lo_d, hi_d  # exact ends: the fitted range starts and ends on a budget
        if edge is not None and lo_d < edge < hi_d:
            grid = np.unique(np.append(grid, edge))
        n_at = np.full_like(grid, law_n.get(n, n))
        pred = fit.predict(N=n_at, D=grid)
        inside = grid <= edge if edge is not None else np.ones(len(grid), bool)
        if inside.sum() > 1:
            lines_of[n] += ax.plot(grid[inside], pred[inside], "--", color=c, lw=1.2, label=f"{model_label(n, names.get(n), 'N=')} law",
                                   gid=f"fit:N={si(n)}")
        beyond = grid >= edge if edge is not None else np.zeros(len(grid), bool)
        if beyond.sum() > 1:
            first = not gids(fig, "extrapolation:")
            lines_of[n] += ax.plot(grid[beyond], pred[beyond], ":", color=c, lw=1.6,
                                   label="law beyond each model's fitted data (dotted)" if first else None,
                                   gid=f"extrapolation:N={si(n)}")
            k = int(np.argmax(beyond))
            ax.plot([grid[k]], [pred[k]], "|", color=c, ms=12, mew=1.5,
                    label="extrapolation starts" if first else None, gid=f"extrapolation-start:N={si(n)}")
        if bands and fit.samples is not None:
            iv = fit.predict_interval(N=n_at, D=grid)
            if iv is not None:
                ax.fill_between(grid, iv[0], iv[1], color=c, alpha=0.15, lw=0, gid=f"band:N={si(n)}")
        if ans is not None:
            if not ans.reachable and ans.floor is not None and math.isfinite(ans.floor):
                floors.append(ans.floor)
                ax.plot([grid[0], grid[-1]], [ans.floor, ans.floor], "-.", color=c, lw=1.0,
                        label=f"{model_label(n, names.get(n), 'N=')} floor {ans.floor:.4g}: never reaches the target", gid=f"floor:N={si(n)}")
            markers += [(n, m) for m in _mark_answers(fig, ax, n, c, ans.tokens_at_target_compute,
                                                      ans.loss_at_target_compute, cross, target.loss, grid[-1],
                                                      names.get(n))]
            meas = getattr(ans, "measured", None)
            if meas:
                # where the model's own runs cross the target's loss, beside the law's star: the
                # measured answer (hollow, at its longest run, when no run reached the loss)
                reached = meas.get("tokens") is not None
                x = meas["tokens"] if reached else meas.get("longest")
                if x:
                    # one legend entry per kind, as for the squares: per model it would crowd the legend
                    kind = "measured-reached" if reached else "measured-unreached"
                    label = None if kind in legend_kinds else (
                        "where its own runs cross the target's loss" if reached
                        else "its longest run, which never reached the target's loss")
                    legend_kinds.add(kind)
                    ax.plot([x], [meas["target_loss"]], "D" if reached else ">", color=c, ms=8,
                            mfc=c if reached else "white", mec="0.1" if reached else c, mew=1.2, zorder=6,
                            label=label, gid=f"measured-crossing:N={si(n)}")
    if target is not None:
        what = f"target {target.name}" if target.params is not None else "target"
        ax.axhline(target.loss, color="0.15", lw=1.0, ls=(0, (1, 2)), label=f"{what} loss {target.loss:.4g}",
                   gid="target")
    title = "Loss vs tokens: " + _curves_title(fig, fit, has_points or bool(curve_sizes))
    _finish_loss_axes(ax, title)
    # another model's curves, not the marker's own, are what it must not sit on
    separate_markers(fig, ax, [m for _, m in markers],
                     avoid={m: [ln for k, lns in lines_of.items() if k != n for ln in lns] for n, m in markers})
    return fig


def _curves_title(fig, fit, measured: bool) -> str:
    """What the curves figure draws, and nothing it does not."""
    parts = ["measured (solid)"] if measured else []
    if gids(fig, "points:"):
        parts.append("fitted points (circles)")
    if fit is not None:
        how = "dashed, dotted where extrapolated" if gids(fig, "extrapolation:") else "dashed"
        if fit.is_published:
            how += "; published, fitted on other data"
        parts.append(f"{fit.name or fit.law} ({how})")
    if gids(fig, "floor:"):
        parts.append("floors (dash-dot)")
    return ", ".join(parts)


def _isoflop_groups(points, flops_col: str):
    """Budgets shared by at least two sizes (within ISOFLOP_TOLERANCE), as (C, rows)."""
    df = points.sort_values(flops_col)
    groups, current = [], []
    for _, row in df.iterrows():
        if current and row[flops_col] > current[0][flops_col] * ISOFLOP_TOLERANCE:
            groups.append(current)
            current = []
        current.append(row)
    if current:
        groups.append(current)
    out = []
    for g in groups:
        if len({r["params"] for r in g}) >= 2:
            c = float(np.exp(np.mean([math.log(r[flops_col]) for r in g])))
            out.append((c, g))
    return out


def plot_isoflop(points, fit: LawFit | None = None, budgets=None, n_budgets: int = 4):
    """IsoFLOP profiles (Hoffmann et al. 2022, Approach 2): loss against N at fixed compute.

    Budgets come from ``budgets`` or from the data (points whose 6ND FLOPs agree within
    ISOFLOP_TOLERANCE and span at least two sizes); when the data have no such groups, the
    law's profiles are drawn at ``n_budgets`` budgets spanning the data. Measured points are
    markers, the law's profile L(N, C / 6N) is dashed with its minimum marked: filled where
    it lies within the sizes measured at that budget, hollow where it lies outside them and
    only the law puts it there. With fewer than ISOFLOP_MIN_SIZES sizes at every budget the
    title says the profiles are the law's extrapolation, not measured ones. For a law
    fitted on non-embedding N, N is that count throughout, C = 6ND included, as Kaplan et
    al. 2020 (Sec. 2.1) count it.
    """
    from matplotlib.lines import Line2D


    if points is None or not len(points):
        raise InputError("no points to plot", field="points", fix="point at a sweep with finished runs")
    pts = points.copy()
    ncol = fit.n_column if fit is not None and fit.n_column in pts.columns else "params"
    pts["params"] = pts[ncol].astype(float)
    pts["flops_6nd"] = 6.0 * pts["params"] * pts["tokens"]
    fig, ax = _figure()
    groups = _isoflop_groups(pts, "flops_6nd") if budgets is None else []
    if budgets is not None:
        budget_list = [float(b) for b in budgets]
    elif groups:
        budget_list = [c for c, _ in groups]
    else:
        lo, hi = pts["flops_6nd"].min(), pts["flops_6nd"].max()
        budget_list = list(np.logspace(math.log10(lo), math.log10(hi), n_budgets)) if hi > lo else [float(lo)]
    colors = _colors(len(budget_list))
    n_lo, n_hi = float(pts["params"].min()) / 2, float(pts["params"].max()) * 2
    grid = np.logspace(math.log10(n_lo), math.log10(n_hi), 150)
    has_nd = fit is not None and set(fit.law_obj.inputs) == {"N", "D"}
    most_sizes, outside = 0, 0
    for i, c_budget in enumerate(budget_list):
        col = colors[i]
        tag = f"C={sci(c_budget, 2)}"
        members = ([r for cc, g in groups if cc == c_budget for r in g] if groups else
                   [r for _, r in pts.iterrows()
                    if abs(math.log(r["flops_6nd"] / c_budget)) <= math.log(ISOFLOP_TOLERANCE)])
        sizes = sorted({float(r["params"]) for r in members})
        most_sizes = max(most_sizes, len(sizes))
        if members:
            ax.plot([r["params"] for r in members], [r["loss"] for r in members], "o", color=col, ms=5,
                    label=f"{tag} FLOPs measured", gid=f"isoflop-measured:{tag}")
        if has_nd:
            # the profile reaches out to the law's minimum when it lies beyond the sizes drawn,
            # so that the marked minimum is the law's and not the edge of the plot
            wide = np.logspace(math.log10(n_lo) - 3, math.log10(n_hi) + 3, 1200)
            k = int(np.nanargmin(fit.predict(N=wide, D=c_budget / (6.0 * wide))))
            g = grid
            if 0 < k < len(wide) - 1 and not n_lo <= wide[k] <= n_hi:
                g = np.logspace(math.log10(min(n_lo, wide[k] / 2)), math.log10(max(n_hi, wide[k] * 2)), 150)
            pred = fit.predict(N=g, D=c_budget / (6.0 * g))
            ax.plot(g, pred, "--", color=col, lw=1.2, label=f"{tag} FLOPs law", gid=f"isoflop-fit:{tag}")
            j = int(np.nanargmin(pred))
            measured = bool(sizes) and sizes[0] <= g[j] <= sizes[-1]
            outside += not measured
            ax.plot([g[j]], [pred[j]], "v", color=col, ms=8, mfc=col if measured else "white", mew=1.5,
                    gid=f"isoflop-opt:{tag}")
    ax.set_xscale("log")
    log_axis(ax, "x")
    ax.set_xlabel("parameters N" + (" (non-embedding)" if ncol != "params" else ""))
    ax.set_ylabel("loss (nats/token)")
    title = ("IsoFLOP profiles, compute C = 6ND in FLOPs" + (", N non-embedding" if ncol != "params" else "")
             + (f"; {fit.name or fit.law} dashed" if has_nd else ""))
    if has_nd and most_sizes < ISOFLOP_MIN_SIZES:
        title += (f"\nextrapolated: at most {most_sizes} size{'s' if most_sizes != 1 else ''} measured per budget, "
                  f"fewer than the {ISOFLOP_MIN_SIZES} a measured profile needs:\nthe curves and their minima "
                  "are the law's, not the data's")
    elif outside:
        title += (f"\n{outside} of {len(budget_list)} minima lie outside the sizes measured at their budget: "
                  "extrapolated")
    ax.set_title(title, fontsize=9, color="firebrick" if "extrapolated" in title else "black")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    handles, labels = ax.get_legend_handles_labels()
    if has_nd:
        handles.append(Line2D([], [], marker="v", color="0.3", ls="none", ms=8, mew=1.5))
        labels.append("law's minimum, within the measured sizes")
        handles.append(Line2D([], [], marker="v", color="0.3", mfc="white", ls="none", ms=8, mew=1.5))
        labels.append("law's minimum outside the measured sizes (extrapolated)")
    legend_outside(ax, handles, labels)
    return fig


def plot_residuals(points, fit: LawFit):
    """Relative residuals (measured / predicted - 1, in %) of a fitted L(N, D) against tokens,
    one series of unconnected points per model size (neighbours in D are other runs or other
    branches, not a curve); a structured pattern means the law's form misses the data. The
    title states the quadratic-trend test of the residuals against log D and log N
    (:func:`analysis.selection.residual_trend.residual_trends`), in red when it flags a bias."""

    if points is None or not len(points):
        raise InputError("no points to plot", field="points", fix="point at a sweep with finished runs")
    if fit is None:
        raise InputError("residuals need a law", field="law", fix="fit a law first or name one with --law")
    fig, ax = _figure()
    sizes = sorted(float(n) for n in points["params"].unique())
    colors = dict(zip(sizes, _colors(len(sizes))))
    names = model_names(points)
    markers = "osD^vP*X"
    # Kaplan-form fits take N as non-embedding parameters; predict with the count they were fitted on.
    n_col = fit.n_column if fit.n_column in points.columns else "params"
    all_res = []
    for i, n in enumerate(sizes):
        sub = points[points["params"] == n].sort_values("tokens")
        pred = fit.predict(N=sub[n_col].to_numpy(float), D=sub["tokens"].to_numpy(float))
        res = 100.0 * (sub["loss"].to_numpy(float) / pred - 1.0)
        all_res.append(res)
        ax.plot(sub["tokens"], res, markers[i % len(markers)], ls="none", color=colors[n], ms=6, mec="k", mew=0.4,
                label=model_label(n, names.get(n), "N="), gid=f"residual:N={si(n)}")
    ax.axhline(0.0, color="k", lw=0.8, gid="zero")
    rms = float(np.sqrt(np.mean(np.concatenate(all_res) ** 2)))
    log_axis(ax, "x")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("residual: measured / law - 1 (%)")
    trends = residual_trends(fit, points)
    bias = any(t.flagged for t in trends)
    ax.set_title(f"Residuals of {fit.name or fit.law} (RMS {rms:.3g}%)\n{trend_text(trends)}", fontsize=10,
                 color="firebrick" if bias else "black")
    ax.grid(True, which="major", alpha=0.3)
    legend_outside(ax, fontsize=8)
    return fig


def figure_bytes(fig, fmt: str = "png", dpi: int = 150) -> bytes:
    """Render ``fig`` to bytes in ``fmt`` (png, svg or pdf)."""
    if fmt not in FIGURE_FORMATS:
        raise InputError(f"unknown figure format {fmt!r}", field="output", fix="end the file name in .png, .svg or .pdf")
    buf = io.BytesIO()
    # A fixed date keeps SVG/PDF output byte-identical across runs.
    meta = {"Date": None} if fmt in ("svg", "pdf") else None
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
    return buf.getvalue()


def check_figure_output(path, field: str) -> Path:
    """Refuse now, before any work, a figure name whose format cannot be told or whose place
    cannot be written (``field`` names the option in the one-line error)."""
    path = Path(path)
    if path.suffix.lower().lstrip(".") not in FIGURE_FORMATS:
        raise InputError(f"cannot tell the figure format from {path.name!r}", field=field,
                         fix="end the file name in .png, .svg or .pdf")
    return check_output(path, field)


def save_figure(fig, path, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically; the format follows the extension."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise InputError(f"cannot tell the figure format from {path.name!r}", field="output",
                         fix="end the file name in .png, .svg or .pdf")
    atomic_write_bytes(path, figure_bytes(fig, fmt, dpi))
    return path


def plot_study(study, kinds=PLOT_KINDS, unique_tokens: float | None = None) -> dict:
    """The figures of a :class:`~analysis.extrapolation.extrapolate.Study`, kind -> Figure; ``unique_tokens``
    is the budget the ``repetition`` kind draws (default: the table's median)."""
    out = {}
    for kind in kinds:
        if kind not in PLOT_KINDS + EXTRA_KINDS:
            raise InputError(f"unknown plot kind {kind!r}", field="kind",
                             fix="use one of " + ", ".join(PLOT_KINDS + EXTRA_KINDS))
        if kind == "repetition":
            out[kind] = plot_repetition(study.fit, unique_tokens=unique_tokens, points=study.points)
        elif kind == "curves":
            out[kind] = plot_curves(study.points, study.fit, study.result, curves=study.curves)
        elif kind == "isoflop":
            out[kind] = plot_isoflop(study.points, study.fit)
        else:
            out[kind] = plot_residuals(study.points, study.fit)
    return out



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

from .errors import InputError
from .records import atomic_write_bytes
from .result import LawFit
from .specs import model_names
from .text import model_label, sci, si

__all__ = ["plot_curves", "plot_isoflop", "plot_residuals", "plot_study", "plot_runs", "plot_own_curves", "save_figure",
           "figure_bytes", "FIGURE_FORMATS", "PLOT_KINDS", "EXTRA_KINDS", "gids", "plot_repetition"]

FIGURE_FORMATS = ("png", "svg", "pdf")
PLOT_KINDS = ("curves", "isoflop", "residuals")
#: Kinds drawn only when asked for by name (not part of ``--kind all``).
EXTRA_KINDS = ("repetition",)
#: Points whose FLOPs lie within this factor of each other share an IsoFLOP budget.
ISOFLOP_TOLERANCE = 1.15


def _figure(figsize=(7.5, 5.0)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in (np.linspace(0.0, 0.85, n) if n > 1 else [0.3])]


def _plain_y(ax) -> None:
    """Losses span less than a decade: label log ticks as 3.5, not 3.5 x 10^0."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda y, _: f"{y:.3g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)


def gids(fig, prefix: str = "") -> list[str]:
    """The gids of every artist in ``fig`` that starts with ``prefix``, in drawing order."""
    out = []
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches]:
            g = artist.get_gid()
            if g and g.startswith(prefix):
                out.append(g)
    return out


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


def _mark_answers(fig, ax, n: float, color, at_c, loss_at_c, cross, target_loss: float, x_end: float,
                  name: str | None = None) -> None:
    """A square where size n lands with the target's compute, a star where it reaches the
    target's loss (when that lies on the drawn curve)."""
    if at_c and loss_at_c is not None:
        first = not gids(fig, "at_target_compute:")
        ax.plot([at_c], [loss_at_c], "s", mfc="none", color=color, ms=6, gid=f"at_target_compute:N={si(n)}",
                label="with the target's compute" if first else None)
    if cross is not None and cross <= x_end:
        ax.plot([cross], [target_loss], "*", color=color, ms=11, mec="k", mew=0.5, gid=f"cross:N={si(n)}",
                label=f"{model_label(n, name, 'N=')} reaches target at {si(cross)} tokens")


def _finish_loss_axes(ax, title: str, xlabel: str = "training tokens D", ylabel: str = "loss (nats/token)",
                      fontsize: int = 10) -> None:
    """Log-log axes with plain loss ticks, labels, grid and legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_y(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=fontsize)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, ncol=2, loc="best")


def plot_curves(points=None, fit: LawFit | None = None, result=None, curves: Mapping | None = None,
                bands: bool = True, n_grid: int = 120):
    """Loss against training tokens per model size, on log axes.

    Measured data are solid: each run's own loss curve from ``curves`` (run -> DataFrame with
    ``params``, ``tokens``, ``loss``) when given, else the final points of each size joined
    up. The law's curve L(N, D) starts where its fit saw that model, at the smallest fitted
    D of that size (``points`` are the fitted points), not at the first logged step: below
    it the law describes nothing it was fitted on. It is dashed over that model's fitted
    budgets and dotted beyond them, where extrapolation starts (marked with a tick), out to
    the tokens the model would get with the target's compute (``result``, an
    ExtrapolationResult) and on to where it crosses the target's loss (marked) when that
    lies within 100x. A model the fit never saw is extrapolated from the fitted data's
    token range on; a published law is drawn dashed from each model's smallest measured D,
    as it was fitted on other data. The target loss is a horizontal line; bootstrap
    intervals of the law are shaded bands.
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
    ordered = sorted(((float(df["params"].iloc[0]), str(run), df) for run, df in (curves or {}).items()
                      if df is not None and len(df)), key=lambda x: (x[0], x[1]))
    for _, run, df in ordered:
        n = float(df["params"].iloc[0])
        d = df[np.isfinite(df["loss"])].sort_values("tokens")
        label = None if n in curve_sizes else f"{model_label(n, names.get(n), 'N=')} measured"
        ax.plot(d["tokens"], d["loss"], "-", color=colors.get(n, "0.4"), lw=1.2, alpha=0.9, label=label,
                gid=f"measured:{run}")
        curve_sizes.add(n)
    fitted_d = (fit.data_range.get("D") if fit is not None and not fit.is_published else None)
    for n in sizes:
        c = colors[n]
        own = points[points["params"] == n] if has_points else None
        if own is not None and len(own) and n not in curve_sizes:
            sub = own.sort_values("tokens")
            ax.plot(sub["tokens"], sub["loss"], "o-", color=c, ms=4, lw=1.2,
                    label=f"{model_label(n, names.get(n), 'N=')} measured",
                    gid=f"measured:N={si(n)}")
        if fit is None:
            continue
        if own is not None and len(own):
            lo_d, edge = float(own["tokens"].min()), float(own["tokens"].max())
        elif fitted_d is not None:
            lo_d, edge = float(fitted_d[0]), float(fitted_d[1])
        else:
            lo_d = (target.tokens / 100 if target is not None and target.tokens else 1e9)
            edge = None
        if fit.is_published:
            edge = None  # fitted on other data: there is no fitted range here to leave
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
        if inside.any():
            ax.plot(grid[inside], pred[inside], "--", color=c, lw=1.2,
                    label=f"{model_label(n, names.get(n), 'N=')} law",
                    gid=f"fit:N={si(n)}")
        beyond = grid >= edge if edge is not None else np.zeros(len(grid), bool)
        if beyond.sum() > 1:
            first = not gids(fig, "extrapolation:")
            ax.plot(grid[beyond], pred[beyond], ":", color=c, lw=1.6,
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
            _mark_answers(fig, ax, n, c, ans.tokens_at_target_compute, ans.loss_at_target_compute, cross,
                          target.loss, grid[-1], names.get(n))
    if target is not None:
        what = f"target {target.name}" if target.params is not None else "target"
        ax.axhline(target.loss, color="crimson", lw=1.0, ls=":", label=f"{what} loss {target.loss:.4g}", gid="target")
    title = "Loss vs tokens"
    if fit is not None:
        title += f": measured (solid), {fit.name or fit.law} (dashed, dotted where extrapolated)"
    _finish_loss_axes(ax, title)
    return fig


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
    markers, the law's profile L(N, C / 6N) is dashed with its minimum marked. For a law
    fitted on non-embedding N, N is that count throughout, C = 6ND included, as Kaplan et
    al. 2020 (Sec. 2.1) count it.
    """
    from .laws import get_law

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
    has_nd = fit is not None and set(get_law(fit.law).inputs) == {"N", "D"}
    for i, c_budget in enumerate(budget_list):
        col = colors[i]
        members = ([r for cc, g in groups if cc == c_budget for r in g] if groups else
                   [r for _, r in pts.iterrows()
                    if abs(math.log(r["flops_6nd"] / c_budget)) <= math.log(ISOFLOP_TOLERANCE)])
        if members:
            ax.plot([r["params"] for r in members], [r["loss"] for r in members], "o", color=col, ms=5,
                    label=f"C={sci(c_budget, 2)} measured", gid=f"isoflop-measured:C={sci(c_budget, 2)}")
        if has_nd:
            pred = fit.predict(N=grid, D=c_budget / (6.0 * grid))
            ax.plot(grid, pred, "--", color=col, lw=1.2, label=f"C={sci(c_budget, 2)} law",
                    gid=f"isoflop-fit:C={sci(c_budget, 2)}")
            j = int(np.nanargmin(pred))
            ax.plot([grid[j]], [pred[j]], "v", color=col, ms=7, gid=f"isoflop-opt:C={sci(c_budget, 2)}")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N" + (" (non-embedding)" if ncol != "params" else ""))
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("IsoFLOP profiles (C = 6ND" + (", N non-embedding" if ncol != "params" else "") + ")"
                 + (f", {fit.name or fit.law} dashed" if has_nd else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return fig


def plot_residuals(points, fit: LawFit):
    """Relative residuals (measured / predicted - 1, in %) of a fitted L(N, D) against tokens,
    one series per model size; a structured pattern means the law's form misses the data."""
    if points is None or not len(points):
        raise InputError("no points to plot", field="points", fix="point at a sweep with finished runs")
    if fit is None:
        raise InputError("residuals need a law", field="law", fix="fit a law first or name one with --law")
    fig, ax = _figure()
    sizes = sorted(float(n) for n in points["params"].unique())
    colors = dict(zip(sizes, _colors(len(sizes))))
    names = model_names(points)
    # Kaplan-form fits take N as non-embedding parameters; predict with the count they were fitted on.
    n_col = fit.n_column if fit.n_column in points.columns else "params"
    all_res = []
    for n in sizes:
        sub = points[points["params"] == n].sort_values("tokens")
        pred = fit.predict(N=sub[n_col].to_numpy(float), D=sub["tokens"].to_numpy(float))
        res = 100.0 * (sub["loss"].to_numpy(float) / pred - 1.0)
        all_res.append(res)
        ax.plot(sub["tokens"], res, "o-", color=colors[n], ms=4, lw=0.8,
                label=model_label(n, names.get(n), "N="),
                gid=f"residual:N={si(n)}")
    ax.axhline(0.0, color="k", lw=0.8, gid="zero")
    rms = float(np.sqrt(np.mean(np.concatenate(all_res) ** 2)))
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("residual: measured / law - 1 (%)")
    ax.set_title(f"Residuals of {fit.name or fit.law} (RMS {rms:.3g}%)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return fig


def _run_x(df, x: str) -> np.ndarray:
    """Tokens, or training compute counted as 6ND (Kaplan et al. 2020, Sec. 2.1) like the
    extrapolation and the IsoFLOP profiles, so every figure shares one compute axis."""
    d = df["tokens"].to_numpy(float)
    return d if x == "tokens" else 6.0 * df["params"].to_numpy(float) * d


def plot_runs(points=None, curves: Mapping | None = None, x: str = "tokens", frontier: bool | None = None):
    """Loss of every run of a sweep against training tokens (``x="tokens"``) or training
    compute C = 6ND (``x="flops"``), on log axes.

    Each run's logged validation curve (``curves``: run -> DataFrame with ``params``,
    ``tokens``, ``loss``, as :func:`analysis.extrapolate.measured_curves` returns) is a solid
    line coloured by model size; the measured points (each run's final point and its WSD
    cooldown branches) are circles. With ``frontier`` (the default against compute) the
    compute-efficient frontier, the measurements no cheaper one beats (Kaplan et al. 2020,
    Sec. 6.1; :func:`analysis.overview.compute_frontier`), is drawn as a thick grey line.
    """
    from .overview import compute_frontier

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
    fig, ax = _figure()
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
                        label=None if n in labelled else model_label(n, names.get(n), "N="),
                        gid=f"points:N={si(n)}")
                labelled.add(n)
    if frontier:
        fr = compute_frontier(points if has_points else None, curves)
        ax.plot(fr["flops"], fr["loss"], "-", color="0.3", lw=3.0, alpha=0.45, zorder=0, drawstyle="steps-post",
                label="compute-efficient frontier", gid="frontier")
    what = "tokens" if x == "tokens" else "compute"
    xlabel = "training tokens D" if x == "tokens" else "training compute C = 6ND (FLOPs)"
    _finish_loss_axes(ax, f"Loss vs {what}: logged validation curves (lines), final and cooldown-branch points "
                          "(circles)", xlabel=xlabel, ylabel="validation loss (nats/token)", fontsize=9)
    return fig


def plot_own_curves(study, n_grid: int = 120):
    """Each smaller model's own run, extrapolated alone: its measured validation loss
    (solid) and its stable-phase fit L(D) = E + B / D^beta (dotted; the data term of
    Hoffmann et al. 2022, eq. 2, at fixed N) out to the tokens it would see with the
    target's compute (square) and to where it reaches the target's loss (star) when that
    lies within 100x. The counterpart of :func:`plot_curves` without the joint law."""
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
    fig, ax = _figure()
    seen: dict = {}
    for run, df in sorted((study.curves or {}).items(), key=lambda kv: (float(kv[1]["params"].iloc[0]), kv[0])):
        n = float(df["params"].iloc[0])
        d = df[np.isfinite(df["loss"].to_numpy(float))].sort_values("tokens")
        if not len(d):
            continue
        ax.plot(d["tokens"], d["loss"], "-", color=colors.get(n, "0.4"), lw=1.2,
                label=None if n in seen else f"{model_label(n, names.get(n), 'N=')} measured", gid=f"measured:{run}")
        lo, hi = seen.get(n, (math.inf, 0.0))
        seen[n] = (min(lo, float(d["tokens"].min())), max(hi, float(d["tokens"].max())))
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
        ax.plot(grid, cf.predict(D=grid), ":", color=c, lw=1.6,
                label=f"{model_label(n, names.get(n), 'N=')} own curve fit",
                gid=f"own-fit:N={si(n)}")
        _mark_answers(fig, ax, n, c, own.get("tokens_at_target_compute"), own.get("loss_at_target_compute"),
                      cross, target.loss, grid[-1], names.get(n))
    what = f"target {target.name}" if target.params is not None else "target"
    ax.axhline(target.loss, color="crimson", lw=1.0, ls="--", label=f"{what} loss {target.loss:.4g}", gid="target")
    _finish_loss_axes(ax, "Each run's own curve, extrapolated: measured (solid), E + B/D^beta (dotted)", fontsize=9)
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
    """The figures of a :class:`~analysis.extrapolate.Study`, kind -> Figure; ``unique_tokens``
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


from .plots_repetition import plot_repetition  # noqa: E402  (it builds on the helpers above)

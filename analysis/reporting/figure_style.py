"""Axes and marker layout shared by the figures of :mod:`analysis.reporting.plots` and
:mod:`analysis.reporting.plots_repetition`: colours a reader tells apart, loss axes labelled where the
answers lie, legends beside the data instead of on it, and answer markers that do not hide
one another.

Everything works on a :class:`matplotlib.figure.Figure` built without pyplot.
"""
from __future__ import annotations

import math

import numpy as np

from ..common.text import model_label, si

__all__ = ["colors", "plain_y", "loss_axis", "log_axis", "legend_outside", "separate_markers", "loss_locator",
           "new_figure", "gids", "finish_loss_axes", "mark_answers", "flops_label",
           "PALETTE"]

#: Okabe and Ito's colour-blind-safe palette (Okabe & Ito 2008, "Color Universal Design"),
#: yellow and black left out: yellow vanishes on white, black is kept for reference lines.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


def colors(n: int):
    """``n`` colours that stay distinct: the palette above, a colormap beyond its length."""
    if n <= len(PALETTE):
        return list(PALETTE[:max(n, 1)])
    from matplotlib import colormaps

    cmap = colormaps["turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, n)]


def plain_y(ax) -> None:
    """Label ticks as 3.5, not 3.5 x 10^0 (losses span less than a decade)."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda y, _: f"{y:.3g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)


def _ladder(*bands) -> np.ndarray:
    """Mantissas in [1, 10): each band (start, stop, step) in its own step."""
    return np.unique(np.round(np.concatenate([np.arange(lo, hi - 1e-9, st) for lo, hi, st in bands]), 6))


#: Round mantissas per decade, sparse to dense, each about evenly spaced in log.
_LADDERS = (
    np.array([1.0]),
    np.array([1.0, 2.0, 5.0]),
    np.array([1.0, 1.5, 2.0, 3.0, 5.0, 7.0]),
    np.array([1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0]),
    np.array([1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]),
    _ladder((1, 2, 0.1), (2, 5, 0.2), (5, 10, 0.5)),
    _ladder((1, 2, 0.05), (2, 5, 0.1), (5, 10, 0.2)),
    _ladder((1, 2, 0.02), (2, 5, 0.05), (5, 10, 0.1)),
    _ladder((1, 2, 0.01), (2, 5, 0.02), (5, 10, 0.05)),
)


def _loss_ticks(vmin: float, vmax: float, n: int = 10) -> list[float]:
    """Round values about evenly spaced in log between vmin and vmax, the densest set of at
    most ``n``: on a loss axis from 1.2 to 5 that is 1.2, 1.4, ..., 2, 2.5, 3, ..., where
    matplotlib's log ticks label only 2, 3, 4, 5 and leave the range with the answers (near
    the target loss) bare."""
    if not (vmin > 0 and vmax > vmin and math.isfinite(vmax)):
        return []
    decades = range(math.floor(math.log10(vmin)), math.floor(math.log10(vmax)) + 1)
    best: list[float] = []
    for mant in _LADDERS:
        ticks = [float(f"{m * 10.0 ** k:.6g}") for k in decades for m in mant]
        ticks = [t for t in ticks if vmin * (1 - 1e-9) <= t <= vmax * (1 + 1e-9)]
        if len(ticks) > n:
            break
        best = ticks
    return best


_LOCATOR = []


def loss_locator():
    """A matplotlib Locator placing :func:`_loss_ticks` on the current view (the class is
    built on first use: matplotlib is imported only when a figure is drawn)."""
    if _LOCATOR:
        return _LOCATOR[0]()
    from matplotlib.ticker import Locator

    class LossLocator(Locator):
        """Ticks from :func:`_loss_ticks` on the current view: a log axis less than a few
        decades long gets round labels all along it."""

        def __call__(self):
            vmin, vmax = self.axis.get_view_interval()
            return self.tick_values(vmin, vmax)

        def tick_values(self, vmin, vmax):
            vmin, vmax = sorted((float(vmin), float(vmax)))
            if vmin <= 0 or vmax / vmin > 1e3:
                from matplotlib.ticker import LogLocator

                return LogLocator().tick_values(max(vmin, 1e-300), vmax)
            ticks = _loss_ticks(vmin, vmax)
            if len(ticks) < 2:  # a range narrower than the densest ladder: plain linear steps
                from matplotlib.ticker import MaxNLocator

                return MaxNLocator(6).tick_values(vmin, vmax)
            return ticks

    _LOCATOR.append(LossLocator)
    return LossLocator()


def loss_axis(ax) -> None:
    """A log loss (y) axis labelled with round values over its whole range, no minor labels."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(loss_locator())
    ax.yaxis.set_minor_locator(NullLocator())
    plain_y(ax)
    ax.yaxis.set_minor_formatter(NullFormatter())


def _count_ticks(vmin: float, vmax: float) -> list[float]:
    """1, 2 and 5 per decade over at most 2.5 decades, every decade up to 12, else every
    other decade or more: never more than about 12 labels."""
    lo, hi = sorted((max(float(vmin), 1e-300), float(vmax)))
    span = math.log10(hi / lo)
    subs = (1.0, 2.0, 5.0) if span <= 2.5 else (1.0,)
    stride = max(1, math.ceil(span / 12))
    out = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1, stride)
           for m in subs]
    return [t for t in out if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]


_COUNT_LOCATOR = []


def _count_locator():
    if not _COUNT_LOCATOR:
        from matplotlib.ticker import Locator

        class CountLocator(Locator):
            def __call__(self):
                return self.tick_values(*self.axis.get_view_interval())

            def tick_values(self, vmin, vmax):
                return _count_ticks(vmin, vmax)

        _COUNT_LOCATOR.append(CountLocator)
    return _COUNT_LOCATOR[0]()


def log_axis(ax, which: str = "x", fmt=si) -> None:
    """A log axis of counts (tokens, parameters, FLOPs) labelled 1, 2 and 5 per decade when it
    spans few decades, else per decade, with ``fmt`` (``si``: 200k, 1M), and minor ticks
    unlabelled: matplotlib's own minor labels (2 x 10^5, 3 x 10^5, ...) run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")

    axis.set_major_locator(_count_locator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(float(v))))
    axis.set_minor_locator(LogLocator(base=10.0, subs=np.arange(2, 10) * 1.0))
    axis.set_minor_formatter(NullFormatter())


def legend_outside(ax, handles=None, labels=None, fontsize: int = 7, **kw):
    """The legend to the right of the axes, so that no entry hides data; the constrained
    layout makes room for it. Two columns once one would outgrow the axes' height."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    ncol = 1 if len(handles) <= 22 else 2
    return ax.legend(handles, labels, fontsize=fontsize, ncol=ncol, loc="upper left",
                     bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, **kw)


def _segment_distance(p: np.ndarray, path: np.ndarray) -> float:
    """Distance in display units from the point ``p`` to the polyline ``path`` (k x 2)."""
    path = path[np.all(np.isfinite(path), axis=1)]
    if len(path) == 0:
        return math.inf
    if len(path) == 1:
        return float(np.hypot(*(path[0] - p)))
    a, b = path[:-1], path[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
    near = a + t[:, None] * ab
    return float(np.min(np.hypot(*(near - p).T)))


def separate_markers(fig, ax, markers, avoid=None, step_pt: float = 9.0, max_steps: int = 8) -> dict:
    """Every marker stays on its value. A single-point marker (Line2D) that would cover
    another, or lie on a line in ``avoid`` (marker -> lines it must not sit on), gets a short
    text label (its size, from its gid) set beside it and up or down by multiples of
    ``step_pt`` points, with a thin leader in the marker's colour to the marker, so the
    reader can tell which is which. Returns marker -> the label's vertical offset in points
    (0: no label needed)."""
    markers = [m for m in markers if m is not None]
    if not markers:
        return {}
    fig.draw_without_rendering()  # the layout (legend outside included) fixes the transforms
    px = fig.dpi / 72.0
    avoid = avoid or {}
    paths = {id(ln): ax.transData.transform(np.column_stack([ln.get_xdata(), ln.get_ydata()]).astype(float))
             for m in markers for ln in avoid.get(m, [])}
    where = {m: ax.transData.transform((float(m.get_xdata()[0]), float(m.get_ydata()[0]))) for m in markers}
    size = {m: 0.5 * m.get_markersize() * px for m in markers}
    labels: list[np.ndarray] = []
    offsets = {}
    for m in sorted(markers, key=lambda m: float(m.get_xdata()[0])):
        p, r = where[m], size[m]
        crowded = any(np.hypot(*(p - where[o])) < 1.25 * (r + size[o]) for o in markers if o is not m)
        crowded |= any(_segment_distance(p, paths[id(ln)]) < 0.8 * r for ln in avoid.get(m, []))
        offsets[m] = 0.0
        if not crowded:
            continue
        best, best_cost = 1, math.inf
        for k in [s * j for j in range(1, max_steps + 1) for s in (1, -1)]:
            q = p + np.array([r + 4 * px, k * step_pt * px])
            cost = sum(1 for qq in labels if abs(q[1] - qq[1]) < step_pt * px and abs(q[0] - qq[0]) < 40 * px)
            cost += sum(1 for o in markers if np.hypot(*(q - where[o])) < size[o] + 4 * px)
            if cost < best_cost:
                best, best_cost = k, cost
            if cost == 0:
                break
        labels.append(p + np.array([r + 4 * px, best * step_pt * px]))
        offsets[m] = best * step_pt
        gid = m.get_gid() or ""
        text = gid.split("N=", 1)[1] if "N=" in gid else gid
        x, y = float(m.get_xdata()[0]), float(m.get_ydata()[0])
        ax.annotate(text, xy=(x, y), xytext=(r / px + 4.0, best * step_pt), textcoords="offset points",
                    fontsize=7, color=m.get_color(), va="center", ha="left", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": m.get_color(), "lw": 0.6, "shrinkA": 0.0,
                                "shrinkB": r / px}, gid=f"label:{gid}")
    return offsets


def new_figure(figsize=(10.0, 5.0)):
    """A figure wide enough for the data axes and a legend beside them, and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


def gids(fig, prefix: str = "") -> list[str]:
    """The gids of every artist in ``fig`` that starts with ``prefix``, in drawing order."""
    out = []
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches]:
            g = artist.get_gid()
            if g and g.startswith(prefix):
                out.append(g)
    return out


def finish_loss_axes(ax, title: str, xlabel: str = "training tokens D", ylabel: str = "loss (nats/token)",
                     fontsize: int = 10) -> None:
    """Log-log axes with round loss labels along the whole loss range, grid and legend beside the data."""
    log_axis(ax, "x")
    loss_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    # left-aligned: with a two-column legend the axes are narrower than a centred title
    ax.set_title(title, fontsize=fontsize, loc="left")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    legend_outside(ax)


def mark_answers(fig, ax, n: float, color, at_c, loss_at_c, cross, target_loss: float, x_end: float,
                 name: str | None = None) -> list:
    """A square where size n lands with the target's compute, a star where it reaches the
    target's loss (when that lies on the drawn curve); returns the markers drawn."""
    out = []
    if at_c and loss_at_c is not None:
        first = not gids(fig, "at_target_compute:")
        out += ax.plot([at_c], [loss_at_c], "s", mfc="none", color=color, ms=6, gid=f"at_target_compute:N={si(n)}",
                       label="with the target's compute" if first else None)
    if cross is not None and cross <= x_end:
        out += ax.plot([cross], [target_loss], "*", color=color, ms=11, mec="k", mew=0.5, gid=f"cross:N={si(n)}",
                       label=f"{model_label(n, name, 'N=')} reaches target at {si(cross)} tokens")
    return out


def flops_label(v: float) -> str:
    """A compute tick: 1e12, 2e12, 5e12."""
    if not (v > 0 and math.isfinite(v)):
        return ""
    e = math.floor(math.log10(v) + 1e-9)
    return f"{v / 10 ** e:.2g}e{e}"

"""``python docs/studies/repetition_study.py SWEEP_DIR``: what repeated epochs are worth on our own runs.

For a sweep of the ``data_constrained`` preset (each size at several unique-token budgets U,
WSD branches at 1, 2, 4, 8 and 16 epochs), it prints

* the measured validation loss at equal training tokens D but fewer unique tokens (more
  epochs): if repetition were free, the losses in a row would agree;
* Muennighoff et al. 2023's data-constrained law fitted with every parameter free, its
  R_D* and R_N*, and the profile-likelihood interval of R_D*;

and with ``--figure PNG`` draws loss against tokens, one line per (size, U). This is the
script behind the "Our own repeated-data sweep" section of docs/analysis.md.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from analysis.common.errors import TableError, ToolkitError
from analysis.common.text import format_table, num, si
from analysis.data.loading import load_points
from analysis.fitting.fit import fit_law
from analysis.fitting.profile import profile
from analysis.reporting.plots import save_figure

__all__ = ["equal_tokens_table", "main"]


def equal_tokens_table(points) -> list[dict]:
    """One row per (size, D) measured at two or more unique-token budgets: the loss at each U."""
    # a one-epoch branch rounded to whole steps carries a U a step short of its run's: group them
    pts = points.assign(_n=np.round(np.log(points["params"].astype(float)), 3),
                        _d=np.round(np.log(points["tokens"].astype(float)), 2),
                        _u=np.round(np.log(points["unique_tokens"].astype(float)), 1))
    labels = pts.groupby("_u")["unique_tokens"].max().astype(float)
    rows = []
    for (_, _), g in pts.groupby(["_n", "_d"]):
        if g["_u"].nunique() < 2:
            continue
        row = {"params": si(float(g["params"].iloc[0])), "tokens": si(float(g["tokens"].iloc[0]))}
        for key, u in labels.items():
            hit = g[g["_u"] == key]
            row[f"U={si(u)}"] = (f"{num(float(hit['loss'].iloc[0]))} ({float(hit['tokens'].iloc[0]) / u:.2g} ep)"
                                 if len(hit) else "-")
        rows.append(row)
    return rows


def _figure(points, path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    sizes = sorted(points["params"].unique())
    points = points.assign(_u=np.round(np.log(points["unique_tokens"].astype(float)), 1))
    us = sorted(points["_u"].unique())
    styles = ["-", "--", ":"]
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for i, n in enumerate(sizes):
        color = cmap(i / max(1, len(sizes) - 1) * 0.85)
        for j, u in enumerate(us):
            g = points[(points["params"] == n) & (points["_u"] == u)].sort_values("tokens")
            if not len(g):
                continue
            ax.plot(g["tokens"], g["loss"], styles[j % 3], marker="o", ms=4, color=color,
                    label=f"N={si(float(n))}, U={si(float(g['unique_tokens'].max()))}")
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D (each point: 1, 2, 4, 8 or 16 epochs over U)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("Repeated data: solid, dashed, dotted = fewest to most unique tokens U", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    fig.legend(loc="outside right upper", fontsize=7)

    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python docs/studies/repetition_study.py", description=__doc__.splitlines()[0])
    p.add_argument("sweep", help="a sweep directory of the data_constrained preset (or a table with unique_tokens)")
    p.add_argument("--figure", metavar="PNG", help="also draw loss against tokens per (size, U)")
    args = p.parse_args(argv)

    try:
        pts = load_points(args.sweep)
        if "unique_tokens" not in pts.columns or pts["unique_tokens"].isna().all():
            raise TableError("no unique_tokens column", field="unique_tokens",
                             fix="give a sweep of the data_constrained preset")
        print(f"{len(pts)} points, {pts['params'].nunique()} sizes, U in "
              + ", ".join(si(float(u)) for u in sorted(pts["unique_tokens"].unique())))
        print("\nMeasured validation loss at equal training tokens (epochs in brackets):")
        rows = equal_tokens_table(pts)
        print(format_table(rows, formats={k: str for k in rows[0]}) if rows else "(no shared (N, D))")
        fit = fit_law(pts, "data_constrained", progress=False)
        print()
        print(fit.report())
        grid = np.geomspace(0.5, 200, 25)
        prof = profile(fit, pts, "R_D_star", grid)
        lo, hi = prof.interval
        print(f"\nR_D* = {num(fit.params['R_D_star'])}; {100 * prof.level:g}% profile interval "
              f"[{num(lo)}{' (open)' if prof.open_low else ''}, {num(hi)}{' (open)' if prof.open_high else ''}] "
              f"over {num(grid[0])} .. {num(grid[-1])}")
        if args.figure:
            _figure(pts, args.figure)
            print(f"wrote {args.figure}")
    except ToolkitError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Calibration of the prediction intervals on real ladders: ``python docs/studies/calibration.py``.

For every backtest split of every Porian et al. 2024 configuration, the law is chosen on
the split's training points alone (as ``--law auto`` would choose it there), fitted with a
bootstrap, and each held-out point is checked against its prediction interval. Three
intervals are scored, each built from the training points only:

* ``bootstrap``: the percentile interval of the chosen law's bootstrap refits;
* ``+ laws``: that interval widened to cover the point predictions of every candidate law
  the training part's own backtest could not tell apart from the choice (within
  :data:`analysis.selection.backtest.TIE`);
* ``+ backtest``: the ``+ laws`` interval widened on each side by the chosen law's
  largest relative error in the training part's own backtest (one step further out than
  the points it was fitted on), scaled by z_level / z_0.90 so that at 90% it is that
  error itself.

It also measures how the asymptotic standard errors compare with the bootstrap's spread
on the whole tables (:func:`stderr_ratios`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtest_tables import ladders
from analysis.fitting.fit import fit_law
from analysis.laws import get_law
from analysis.selection.backtest import _prepare, splits_for
from analysis.selection.checked import AUTO, fit_checked

__all__ = ["LEVELS", "SplitCalibration", "calibrate_table", "coverage", "stderr_ratios", "main", "VARIANTS"]

LEVELS = (0.5, 0.68, 0.8, 0.9, 0.95)
VARIANTS = ("bootstrap", "+ laws", "+ backtest")


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


@dataclass
class SplitCalibration:
    """One split's held-out points: truth, prediction and the interval edges of each variant per level."""

    table: str
    split: str
    law: str
    tied: list[str]
    inner_max_error: float | None
    loss: list[float]
    pred: list[float]
    # variant -> level -> (low list, high list)
    intervals: dict


def calibrate_table(name: str, points: pd.DataFrame, bootstrap: int = 50, seed: int = 0, n_jobs: int = 2,
                    levels=LEVELS) -> list[SplitCalibration]:
    """Each split's held-out points against the intervals of the fit ``--law auto`` makes of
    its training points (:func:`analysis.selection.checked.fit_checked`: law, combination and size cut
    chosen there, tied laws fitted to the same points)."""

    df = _prepare(points)
    chosen, _ = splits_for(df)
    out = []
    for sp in chosen:
        train, test = df[~sp.test].reset_index(drop=True), df[sp.test].reset_index(drop=True)
        # the earlier rule this section measures (--sizes auto: law, combination and size cut),
        # fitted to every run of the split as it was when these tables were made (min_tpp=0)
        checked = fit_checked(train, AUTO, sizes="auto", min_tpp=0, bootstrap=bootstrap, seed=seed, n_jobs=n_jobs,
                              progress=False)
        fit, law, inner_max = checked.fit, checked.choice.label, checked.backtest_error
        tied = list(checked.tied)
        D = test["tokens"].to_numpy(float)
        C = test["flops"].to_numpy(float)

        def n_of(f):
            return test[f.n_column if f.n_column in test.columns else "params"].to_numpy(float)

        pred = np.asarray(fit.predict(N=n_of(fit), D=D, C=C), float)
        draws = fit.predict_samples(N=n_of(fit), D=D, C=C)
        others = [np.asarray(f.predict(N=n_of(f), D=D, C=C), float) for f in checked.tied.values()]
        ivs = {v: {} for v in VARIANTS}
        for lv in levels:
            q = 100 * (1 - lv) / 2
            lo, hi = np.nanpercentile(draws, q, axis=0), np.nanpercentile(draws, 100 - q, axis=0)
            ivs["bootstrap"][lv] = (lo.tolist(), hi.tolist())
            lo2, hi2 = np.minimum.reduce([lo, pred, *others]), np.maximum.reduce([hi, pred, *others])
            ivs["+ laws"][lv] = (lo2.tolist(), hi2.tolist())
            w = (inner_max or 0.0) * _z(lv) / _z(0.90)
            ivs["+ backtest"][lv] = ((lo2 * (1 - w)).tolist(), (hi2 * (1 + w)).tolist())
        out.append(SplitCalibration(name, sp.name, law, tied, inner_max, test["loss"].tolist(), pred.tolist(), ivs))
    return out


def coverage(results: list[SplitCalibration], variant: str, level: float) -> tuple[int, int]:
    """(held-out points inside their interval, held-out points)."""
    inside = total = 0
    for r in results:
        lo, hi = r.intervals[variant][level]
        y = np.asarray(r.loss)
        inside += int(np.sum((y >= np.asarray(lo)) & (y <= np.asarray(hi))))
        total += len(y)
    return inside, total


def stderr_ratios(points: pd.DataFrame, law: str = "chinchilla", bootstrap: int = 50, seed: int = 0,
                  n_jobs: int = 2) -> dict[str, float]:
    """Per parameter: the bootstrap's standard deviation over the asymptotic standard error
    (in log space for the positive scale constants, whose bootstrap is log-skewed: the
    asymptotic error of a scale X is compared as stderr(X) / X with sd(log X))."""

    fit = fit_law(points, law, bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, progress=False)
    out = {}
    for j, p in enumerate(get_law(law).params):
        se = fit.stderr.get(p)
        s = fit.samples[:, j]
        s = s[np.isfinite(s)]
        if not se or len(s) < 3:
            continue
        if p in get_law(law).exponents:
            out[p] = float(np.std(s, ddof=1) / se)
        else:
            s = s[s > 0]
            out[p] = float(np.std(np.log(s), ddof=1) / (se / fit.params[p]))
    return out


def summary_lines(results: list[SplitCalibration], level: float = 0.9) -> str:
    """The numbers docs/analysis.md quotes: median held-out error, median half-widths of the
    90% intervals, coverage of the widest one per split kind, and how often auto cut or stacked."""
    err = np.concatenate([np.abs(np.asarray(r.loss) / np.asarray(r.pred) - 1) for r in results])
    lines = [f"median held-out error {100 * np.median(err):.1f}%"]
    for v in VARIANTS:
        hw = np.concatenate([(np.asarray(r.intervals[v][level][1]) - np.asarray(r.intervals[v][level][0]))
                             / (2 * np.asarray(r.pred)) for r in results])
        lines.append(f"{v}: median {100 * level:g}% half-width {100 * np.median(hw):.1f}%")
    for split in dict.fromkeys(r.split for r in results):
        a, b = coverage([r for r in results if r.split == split], VARIANTS[-1], level)
        lines.append(f"{VARIANTS[-1]}, {split}: {100 * a / b:.0f}% ({a}/{b}) inside")
    lines.append(f"choices: {sum('[' in r.law for r in results)} of {len(results)} splits fitted to the largest "
                 f"sizes only, {sum(r.law.startswith('mix(') for r in results)} a stacked combination")
    return "\n".join(lines)


def figure(results: list[SplitCalibration], path: Path, levels=LEVELS) -> None:
    from matplotlib.figure import Figure  # no pyplot, as in analysis.reporting.plots

    fig = Figure(figsize=(10, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    # One colour per variant in both panels, so the scatter reads against the left legend.
    colours = dict(zip(VARIANTS, ("C0", "C1", "C2")))
    for v, m in zip(VARIANTS, ("o", "s", "^")):
        cov = [coverage(results, v, lv) for lv in levels]
        ax1.plot(levels, [a / b for a, b in cov], marker=m, color=colours[v], label=v)
    ax1.set_xlabel("nominal coverage of the prediction interval")
    ax1.set_ylabel("held-out points inside")
    ax1.set_xlim(0.4, 1.0)
    ax1.set_ylim(0.0, 1.02)
    ax1.legend(loc="center right", fontsize=8)
    ax1.set_title("Porian et al. 2024: every backtest split", fontsize=10)
    err, hw_b, hw_w = [], [], []
    for r in results:
        y, p = np.asarray(r.loss), np.asarray(r.pred)
        err += list(np.abs(y / p - 1))
        lo, hi = (np.asarray(a) for a in r.intervals["bootstrap"][0.9])
        hw_b += list((hi - lo) / (2 * p))
        lo, hi = (np.asarray(a) for a in r.intervals["+ backtest"][0.9])
        hw_w += list((hi - lo) / (2 * p))
    ax2.loglog(hw_b, err, ".", ms=4, alpha=0.6, color=colours["bootstrap"], label="bootstrap")
    ax2.loglog(hw_w, err, ".", ms=4, alpha=0.6, color=colours["+ backtest"], label="+ laws + backtest")
    lim = [1e-4, 1.0]
    ax2.plot(lim, lim, color="0.6", lw=1, ls="--")
    ax2.set_xlabel("90% interval half-width (relative)")
    ax2.set_ylabel("|held-out relative error|")
    ax2.legend(loc="upper left", fontsize=8)
    ax2.set_title("above the line: outside the interval", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def coverage_table(results: list[SplitCalibration], levels=LEVELS) -> str:
    lines = ["| interval | " + " | ".join(f"{100 * lv:g}%" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    for v in VARIANTS:
        cells = []
        for lv in levels:
            a, b = coverage(results, v, lv)
            cells.append(f"{100 * a / b:.0f}% ({a}/{b})")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python docs/studies/calibration.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--figure", default="", help="write the calibration figure of the whole tables here (PNG)")
    ap.add_argument("--json", default="", help="write every split's intervals here")
    ap.add_argument("--configs", default="", help="comma-separated Porian configurations (default: all 15)")
    ap.add_argument("--which", default="porian,overtrained",
                    help="comma-separated: porian (whole tables), overtrained (their D/N >= 20 part)")
    ap.add_argument("--no-stderr", action="store_true", help="skip the asymptotic-vs-bootstrap comparison")
    args = ap.parse_args(argv)

    tables = ladders(tuple(w for w in args.which.split(",") if w in ("porian", "overtrained")))
    if args.configs:
        keep = {"porian2024:" + c.replace("porian2024:", "") for c in args.configs.split(",")}
        tables = [t for t in tables if t.name.split(" (")[0] in keep]
    groups: dict[str, list[SplitCalibration]] = {}
    ratios = {}
    for lad in tables:
        t = time.perf_counter()
        res = calibrate_table(lad.name, lad.points, bootstrap=args.bootstrap, n_jobs=args.jobs)
        groups.setdefault("over-trained parts" if lad.overtrained else "whole tables", []).extend(res)
        msg = f"{lad.name}: {time.perf_counter() - t:.1f} s; " + ", ".join(
            f"{r.split}:{r.law}{'~' + '/'.join(r.tied) if r.tied else ''}" for r in res)
        if not args.no_stderr and not lad.overtrained:
            ratios[lad.name] = stderr_ratios(lad.points, bootstrap=args.bootstrap, n_jobs=args.jobs)
            msg += "; bootstrap sd / asymptotic se: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios[lad.name].items())
        print(msg, file=sys.stderr, flush=True)
    results = [r for rs in groups.values() for r in rs]
    for g, rs in groups.items():
        print(f"{g} ({len(rs)} splits):\n{coverage_table(rs)}\n\n{summary_lines(rs)}\n")
    if ratios:
        params = sorted({p for r in ratios.values() for p in r})
        print()
        print("| parameter | median | min | max |\n|---|---|---|---|")
        for p in params:
            vals = [r[p] for r in ratios.values() if p in r]
            print(f"| {p} | {np.median(vals):.2f} | {min(vals):.2f} | {max(vals):.2f} |")
    if args.figure:
        figure(groups.get("whole tables") or results, Path(args.figure))
    if args.json:
        Path(args.json).write_text(json.dumps({"splits": [asdict(r) for r in results], "stderr_ratios": ratios},
                                              default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

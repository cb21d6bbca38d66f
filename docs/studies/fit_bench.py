"""Benchmark of the Approach-3 fit: ``python docs/studies/fit_bench.py``.

On a synthetic 250-point table (IsoFLOP-style design, drawn from the Besiroglu et al.
2024 law with log-normal noise) it times

1. our fit: the 4,500-point grid of the Chinchilla replication scored in one vectorised
   call, L-BFGS-B with the analytic gradient from the 8 best grid points and the 2 best
   linear solves for the coefficients;
2. the plain baseline: scipy L-BFGS-B (finite-difference gradient, as in the
   replication's notebook) from every one of the 4,500 grid points;
3. 1,000 bootstrap refits of our fit across worker processes;

and prints how far apart the two optima are (objective, parameters, and the predicted
loss at 70B parameters and 1.4T tokens). The first two run interleaved in ``--rounds``
rounds (:mod:`analysis.common.rounds`: each round times both, the order swapped every round):
their times are medians over the rounds, and the speed-up is taken within each round and
shown as median (min-max), with a warning when it spreads by more than 10%.

``python docs/studies/fit_bench.py --backtest`` instead times what ``scaling fit --backtest``
does (:func:`analysis.selection.checked.fit_checked` with ``auto``: the distance backtest of every candidate
law, the choice, the fit, the tied laws and the self-checks) on a 240-point synthetic table
and on each of the 15 Porian et al. 2024 configurations; the target is 3 s each.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from analysis.common.rounds import DEFAULT_ROUNDS, interleave, median, ratio, spread_text, spread_warning, timed
from analysis.common.text import format_table, num
from analysis.data.datasets import list_datasets, load
from analysis.data.published import besiroglu2024
from analysis.data.synthetic import synthetic_table
from analysis.fitting.fit import EPOCH_GRID, HUBER_DELTA, fit_law, huber
from analysis.fitting.optimize import single_thread_blas
from analysis.laws import chinchilla
from analysis.selection.checked import fit_checked

FAR = (70e9, 1.4e12)  # Chinchilla itself: far outside the synthetic table


def _plain_objective(theta, x, y, logy, delta):
    e, a, b, alpha, beta = theta
    pred = np.logaddexp(np.logaddexp(a - alpha * x, b - beta * y), e)
    return float(np.sum(huber(pred - logy, delta)))


def baseline(points: pd.DataFrame, starts: np.ndarray, delta: float = HUBER_DELTA):
    """Plain scipy L-BFGS-B from every start, finite-difference gradients; best end point."""
    from scipy.optimize import minimize

    x, y = np.log(points["params"].to_numpy()), np.log(points["tokens"].to_numpy())
    logy = np.log(points["loss"].to_numpy())
    best = (np.inf, None)
    with np.errstate(all="ignore"), single_thread_blas():
        for s in starts:
            r = minimize(_plain_objective, s, args=(x, y, logy, delta), method="L-BFGS-B")
            if np.isfinite(r.fun) and r.fun < best[0]:
                best = (float(r.fun), r.x)
    return best


def _natural(theta):
    e, a, b, alpha, beta = theta
    return {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": alpha, "beta": beta}


#: `scaling fit` with the default law, backtest included, on each table (docs/analysis.md, Benchmark)
BACKTEST_TARGET_S = 3.0


def backtest_timings(points: int = 240, seed: int = 0) -> int:
    """Seconds of ``scaling fit --backtest`` (in process, after one warm-up) per table."""

    tables = [(f"synthetic {points}-point table", synthetic_table(points, seed))]
    tables += [(n, load(n)) for n in list_datasets() if n.startswith("porian2024:")]
    fit_checked(tables[0][1], run_backtest=True, progress=False)  # imports and first-call costs
    rows = []
    for name, df in tables:
        t = time.perf_counter()
        c = fit_checked(df, run_backtest=True, progress=False)
        rows.append({"table": name, "points": len(df), "auto chose": c.fit.law,
                     "seconds": time.perf_counter() - t})
        print(f"{name}: {rows[-1]['seconds']:.2f} s", file=sys.stderr, flush=True)
    print(format_table(rows, formats={"table": str, "auto chose": str, "seconds": lambda v: f"{v:.2f}"}))
    worst = max(r["seconds"] for r in rows)
    print(f"target (each under {BACKTEST_TARGET_S:g} s): " + ("met" if worst < BACKTEST_TARGET_S else "NOT met")
          + f"; slowest {worst:.2f} s")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python docs/studies/fit_bench.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python docs/studies/fit_bench.py --bootstrap 1000 --jobs 2")
    ap.add_argument("--points", type=int, default=250, help="table size (default 250)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap refits to time (default 1000)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    ap.add_argument("--baseline-starts", type=int, default=None, metavar="K",
                    help="run the plain baseline from K evenly spaced grid points and scale its time to the "
                         "full grid (default: all 4,500; takes minutes)")
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                    help="interleaved rounds of our fit and the plain baseline; the speed-up is taken within "
                         f"each round and shown as median (min-max) (default {DEFAULT_ROUNDS})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backtest", action="store_true",
                    help="time `scaling fit --backtest` on a 240-point table and the 15 Porian et al. 2024 "
                         "configurations instead")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.backtest:
        return backtest_timings(240, args.seed)
    jobs = args.jobs or os.cpu_count() or 1

    pts = synthetic_table(args.points, args.seed)
    print(f"table: {len(pts)} points, {pts['params'].nunique()} sizes; law of Besiroglu et al. 2024 "
          f"with 1.5% log-normal noise; {os.cpu_count()} CPU cores, {jobs} worker(s)", flush=True)

    fit_law(pts, "chinchilla", progress=False)  # imports and first-call costs out of the timings

    grid = EPOCH_GRID
    if args.baseline_starts and args.baseline_starts < len(grid):
        idx = np.linspace(0, len(grid) - 1, args.baseline_starts).round().astype(int)
        starts, scale = grid[idx], len(grid) / len(idx)
    else:
        starts, scale = grid, 1.0
    print(f"our fit and plain scipy L-BFGS-B from {len(starts)} grid points, {args.rounds} interleaved "
          "round(s) ...", flush=True)
    got = {}

    def ours_fit():
        got["ours"] = fit_law(pts, "chinchilla", progress=False)

    def plain_fit():
        got["base"] = baseline(pts, starts)

    secs = interleave({"ours": timed(ours_fit), "plain": timed(plain_fit)}, args.rounds,
                      on_call=lambda r, name, t: print(f"  round {r + 1}: {name} {t:.2f} s", file=sys.stderr,
                                                       flush=True))
    secs["plain"] = [t * scale for t in secs["plain"]]
    t_ours, t_base = median(secs["ours"]), median(secs["plain"])
    speedup = ratio(secs["plain"], secs["ours"])
    ours, (f_base, th_base) = got["ours"], got["base"]

    print(f"bootstrap: {args.bootstrap} refits on {jobs} worker(s) ...", flush=True)
    t = time.perf_counter()
    boot = fit_law(pts, "chinchilla", bootstrap=args.bootstrap, n_jobs=jobs, progress=False)
    t_boot = time.perf_counter() - t

    base = _natural(th_base)
    far_ours = float(ours.predict(*FAR))
    far_base = float(chinchilla(*FAR, **base))
    rel = max(abs(ours.params[k] - base[k]) / abs(base[k]) for k in base)
    est = " (estimated from a subset)" if scale > 1 else ""
    rows = [
        {"run": "our fit (grid scored at once, 8 grid and 2 linear L-BFGS starts, analytic gradient)", "seconds": t_ours,
         "objective": ours.objective},
        {"run": f"plain scipy L-BFGS-B from all {len(grid)} grid points{est}", "seconds": t_base,
         "objective": f_base, "x": speedup, "spread": spread_text(speedup)},
        {"run": f"{args.bootstrap} bootstrap refits, {jobs} worker(s)", "seconds": t_boot, "objective": None},
    ]
    print()
    print(format_table(rows, ["run", "seconds", "objective", "x", "spread"],
                       formats={"run": str, "seconds": lambda v: f"{v:.2f}",
                                "objective": lambda v: "-" if v is None else f"{v:.6e}",
                                "x": lambda v: "-" if v is None else v.text(digits=0),
                                "spread": lambda v: v or "-"},
                       headers={"seconds": "seconds (median)", "x": "time over ours"}))
    print()
    prow = [{"param": k, "ours": ours.params[k], "plain grid": base[k], "true": besiroglu2024().params[k],
             "boot 90% low": boot.ci[k][0], "boot 90% high": boot.ci[k][1]} for k in base]
    print(format_table(prow, formats={"param": str}))
    print()
    print(f"speed-up of the fit: {speedup.text(digits=0)} over {speedup.rounds} interleaved round(s) "
          f"(median, min-max); optimum: objective difference "
          f"{ours.objective - f_base:+.2e}, largest relative parameter difference {rel:.1e}; "
          f"loss at N=70B, D=1.4T: {num(far_ours, 6)} vs {num(far_base, 6)}")
    ok = ours.objective <= f_base * (1 + 1e-6) and abs(far_ours / far_base - 1) < 1e-4 and t_boot < 60
    print("target (same optimum, 1000 refits under 60 s): " + ("met" if ok else "NOT met"))
    warning = spread_warning({"plain L-BFGS-B time over our fit's": speedup})
    if warning:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())

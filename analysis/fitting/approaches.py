"""Chinchilla Approaches 1 and 2: compute-optimal allocation without a parametric loss.

Both estimate N_opt(C) = k_N C^a and D_opt(C) = k_D C^b (Hoffmann et al. 2022, Sec. 3):

* **Approach 1** (Sec. 3.1) takes, at each of many FLOP values C, the training curve
  with the lowest loss at C (the envelope of all curves), and fits power laws to the
  (C, N, D) of those minima.
* **Approach 2** (Sec. 3.2) groups runs into IsoFLOP profiles (equal C, varying N), fits a
  parabola of loss in log N to each profile, takes its vertex as N_opt(C), and fits power
  laws across budgets.

Intervals are bootstrap percentiles: Approach 1 resamples whole curves (runs), Approach 2
resamples points within each IsoFLOP profile. Hoffmann et al. report a = 0.50, b = 0.50
(Approach 1) and a = 0.49, b = 0.51 (Approach 2).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..common.errors import InputError, TableError
from ..common.records import find_run_dirs, iter_points, read_metrics, read_summary
from ..data.loading import load_points
from ..data.points import with_flops
from .result import ALLOCATION_PARAMS, AllocationFit, check_interval_args, interval_from_samples

__all__ = ["approach1", "approach2", "isoflop_budgets", "envelope", "loglog_fit", "akima_optimum", "OPTIMA"]


# ---------------------------------------------------------------------- shared pieces

def loglog_fit(C, Y, weights=None) -> tuple[float, float, float, float]:
    """Least squares of log Y = log k + s log C: (s, k, stderr of s, stderr of k).
    Centred in log C so that the fit stays well conditioned at C ~ 1e20. ``weights``
    (one per point, e.g. 1/std^2 of log Y) make it weighted least squares; the standard
    errors then scale the weights by the residual variance, as for unit weights."""
    if weights is not None:
        return _weighted_loglog_fit(C, Y, weights)
    x, y = np.log(np.asarray(C, float)), np.log(np.asarray(Y, float))
    xm = x.mean()
    dx = x - xm
    sxx = float(dx @ dx)
    if len(x) < 2 or sxx == 0:
        return math.nan, math.nan, math.nan, math.nan
    s = float(dx @ (y - y.mean())) / sxx
    c = y.mean() - s * xm
    if len(x) > 2:
        sigma2 = float(np.sum((y - c - s * x) ** 2)) / (len(x) - 2)
        se_s = math.sqrt(sigma2 / sxx)
        se_c = math.sqrt(sigma2 * (1 / len(x) + xm * xm / sxx))
    else:
        se_s = se_c = math.nan
    k = math.exp(c)
    return s, k, se_s, k * se_c


def _weighted_loglog_fit(C, Y, weights) -> tuple[float, float, float, float]:
    x, y = np.log(np.asarray(C, float)), np.log(np.asarray(Y, float))
    w = np.asarray(weights, float)
    sw = float(w.sum())
    xm, ym = float(w @ x) / sw, float(w @ y) / sw
    dx = x - xm
    sxx = float(w @ (dx * dx))
    if len(x) < 2 or sxx == 0:
        return math.nan, math.nan, math.nan, math.nan
    s = float(w @ (dx * (y - ym))) / sxx
    c = ym - s * xm
    if len(x) > 2:
        sigma2 = float(w @ (y - c - s * x) ** 2) / (len(x) - 2)
        se_s = math.sqrt(sigma2 / sxx)
        se_c = math.sqrt(sigma2 * (1 / sw + xm * xm / sxx))
    else:
        se_s = se_c = math.nan
    k = math.exp(c)
    return s, k, se_s, k * se_c


def _powerlaw_params(C, N, D, weights=None) -> np.ndarray:
    a, kN, _, _ = loglog_fit(C, N, weights)
    b, kD, _, _ = loglog_fit(C, D, weights)
    return np.array([a, b, kN, kD])


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, max(dof, 1)))


def _finish(method, C, N, D, loss, level, samples, notes, warn, n_points, n_sizes, meta, weights=None,
            extra=None) -> AllocationFit:
    a, kN, se_a, se_kN = loglog_fit(C, N, weights)
    b, kD, se_b, se_kD = loglog_fit(C, D, weights)
    params = {"a": a, "b": b, "k_N": kN, "k_D": kD}
    stderr = {"a": se_a, "b": se_b, "k_N": se_kN, "k_D": se_kD}
    stderr = {k: (None if not math.isfinite(v) else float(v)) for k, v in stderr.items()}
    ci = {}
    if samples is not None:
        lo, hi = interval_from_samples(samples, level)
        ci = {p: (float(lo[i]), float(hi[i])) for i, p in enumerate(ALLOCATION_PARAMS)}
        bad = int(np.sum(~np.all(np.isfinite(samples), axis=1)))
        if bad:
            warn.append(f"{bad} of {len(samples)} bootstrap resamples could not be fitted and were left out")
    else:
        z = _t_quantile(level, len(C) - 2)
        for p in ("a", "b"):
            if stderr[p] is not None:
                ci[p] = (params[p] - z * stderr[p], params[p] + z * stderr[p])
    if len(C) < 3:
        warn.append(f"only {len(C)} compute values: the power-law exponents rest on {len(C)} points")
    points = [{"C": float(c), "n_opt": float(n), "d_opt": float(d), "loss": float(l)}
              for c, n, d, l in zip(C, N, D, loss)]
    for p, more in zip(points, extra or []):
        p.update(more)
    meta = {**meta, "notes": notes, "ci_method": "bootstrap" if samples is not None else "least-squares"}
    return AllocationFit(method=method, params=params, ci=ci, ci_level=level, stderr=stderr, samples=samples,
                         n_points=n_points, n_sizes=n_sizes, n_budgets=len(C),
                         data_range={"C": (float(np.min(C)), float(np.max(C)))}, points=points,
                         warnings=warn, meta=meta)


# ---------------------------------------------------------------------- Approach 1

def _curves_table(points_or_curves) -> tuple[pd.DataFrame, list[str]]:
    """A long table (curve, params, tokens, flops, loss) from curves or points."""
    notes: list[str] = []
    src = points_or_curves
    if isinstance(src, Mapping):
        frames = []
        for name, c in src.items():
            c = pd.DataFrame(c).copy()
            c["run"] = str(name)
            frames.append(c)
        if not frames:
            raise TableError("no curves given", field="curves", fix="pass at least two runs' curves")
        df = pd.concat(frames, ignore_index=True)
    elif isinstance(src, (str, Path)) and Path(src).is_dir():
        df = _records_curves(Path(src))
        notes.append("curves are the validation losses logged during each run, plus its final and branch points")
    else:

        df = src if isinstance(src, pd.DataFrame) and "params" in src.columns else load_points(src)
        df = df.copy()
    for col in ("params", "tokens", "loss"):
        if col not in df.columns:
            raise TableError(f"missing column {col}", field=col, fix="curves need params, tokens and loss")
    df = df[np.isfinite(df["loss"].astype(float)) & (df["loss"].astype(float) > 0)]
    df = with_flops(df)
    if "run" in df.columns:
        df = df.assign(curve=df["run"].astype(str))
    else:
        # A table of final points: each model size's points form its curve of loss against data.
        df = df.assign(curve=df["params"].map(lambda v: f"N={v:.6g}"))
        notes.append("no run column: each model size's points are treated as one curve")
    return df[["curve", "params", "tokens", "flops", "loss"]].astype(
        {"params": float, "tokens": float, "flops": float, "loss": float}), notes


def _records_curves(path: Path) -> pd.DataFrame:
    rows = []
    for run_dir in find_run_dirs(path):
        s = read_summary(run_dir)
        if s["status"] == "diverged":
            continue
        for r in read_metrics(run_dir):
            if r.get("val_loss") is not None:
                rows.append({"run": s["run_name"], "params": s["params"], "tokens": r["tokens"],
                             "flops": r["flops"], "loss": r["val_loss"]})
        for p in iter_points([run_dir]):
            rows.append({"run": p["run"], "params": p["params"], "tokens": p["tokens"], "flops": p["flops"],
                         "loss": p["loss"]})
    if not rows:
        raise TableError("no validation losses in the run records", field=str(path),
                         fix="train with periodic validation, or pass a table of points")
    return pd.DataFrame(rows).drop_duplicates(["run", "tokens"])


def envelope(curves: pd.DataFrame, n_flops: int = 100, interior: bool = True) -> tuple[pd.DataFrame, int]:
    """The lowest loss at each of ``n_flops`` log-spaced FLOP values over all curves.

    Each curve's loss is interpolated linearly in log C within the range it covers. With
    ``interior`` a FLOP value counts only when its winner is neither the smallest nor the
    largest model covering it: otherwise the true optimum may lie outside the sizes tried
    and the envelope would pin it to the edge. Returns (C, params, tokens, loss) rows and
    the number of FLOP values dropped that way.
    """
    groups = []
    for _, g in curves.groupby("curve", sort=False):
        g = g.sort_values("flops")
        groups.append((float(g["params"].iloc[0]), np.log(g["flops"].to_numpy()), g["loss"].to_numpy(),
                       np.log(g["tokens"].to_numpy())))
    lo = min(c[1][0] for c in groups)
    hi = max(c[1][-1] for c in groups)
    grid = np.linspace(lo, hi, n_flops)
    rows, dropped = [], 0
    for lc in grid:
        cand = [(n, np.interp(lc, lcs, ls), np.interp(lc, lcs, lds)) for n, lcs, ls, lds in groups
                if lcs[0] <= lc <= lcs[-1] and len(lcs) >= 1]
        if len(cand) < 2:
            continue
        sizes = np.array([c[0] for c in cand])
        j = int(np.argmin([c[1] for c in cand]))
        if interior and (sizes[j] <= sizes.min() or sizes[j] >= sizes.max()):
            dropped += 1
            continue
        rows.append({"C": math.exp(lc), "params": cand[j][0], "tokens": math.exp(cand[j][2]), "loss": cand[j][1]})
    return pd.DataFrame(rows, columns=["C", "params", "tokens", "loss"]), dropped


def approach1(points_or_curves, n_flops: int = 100, bootstrap: int = 200, seed: int = 0, level: float = 0.90,
              interior: bool = True) -> AllocationFit:
    """Hoffmann et al. 2022 Approach 1: power laws through the minimum-loss envelope of
    training curves.

    ``points_or_curves``: a DataFrame with ``params``, ``tokens``, ``loss`` and a ``run``
    column (one curve per run; without ``run`` each model size's points form a curve), a
    mapping run -> curve DataFrame, a table file, or a sweep directory (validation losses
    from each run's metrics.jsonl). FLOPs are the table's ``flops`` or 6ND. Intervals:
    ``bootstrap`` resamples of whole curves.
    """
    check_interval_args(level, bootstrap)
    curves, notes = _curves_table(points_or_curves)
    n_curves = curves["curve"].nunique()
    if curves["params"].nunique() < 3:
        raise TableError(f"only {curves['params'].nunique()} model size(s): the envelope needs 3 or more",
                         field="params", fix="add curves of more model sizes")
    env, dropped = envelope(curves, n_flops, interior)
    warn = []
    if dropped:
        notes.append(f"{dropped} FLOP values dropped whose best curve was the smallest or largest model "
                     "covering them (the optimum may lie outside the sizes tried)")
    if len(env) < 2 or env["params"].nunique() < 2:
        raise TableError("the loss envelope never changes model size: N_opt(C) cannot be fitted",
                         field="curves", fix="add model sizes whose curves overlap in FLOPs")
    if env["params"].nunique() < 3:
        warn.append(f"the envelope visits only {env['params'].nunique()} model sizes: a rests on a step function")
    samples = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        names = curves["curve"].unique()
        by = {k: g for k, g in curves.groupby("curve", sort=False)}
        samples = np.full((bootstrap, 4), np.nan)
        for i in range(bootstrap):
            pick = names[rng.integers(0, len(names), len(names))]
            # a curve drawn twice is the same curve: the envelope needs each once
            sub = pd.concat([by[k] for k in np.unique(pick)], ignore_index=True)
            if sub["params"].nunique() < 3:
                continue
            e, _ = envelope(sub, n_flops, interior)
            if len(e) >= 2 and e["params"].nunique() >= 2:
                samples[i] = _powerlaw_params(e["C"], e["params"], e["tokens"])
    return _finish("approach1", env["C"].to_numpy(), env["params"].to_numpy(), env["tokens"].to_numpy(),
                   env["loss"].to_numpy(), level, samples, notes, warn, n_points=len(curves),
                   n_sizes=int(curves["params"].nunique()),
                   meta={"n_flops": n_flops, "n_curves": int(n_curves), "resample": "curves",
                         "envelope_sizes": int(env["params"].nunique())})


# ---------------------------------------------------------------------- Approach 2

def isoflop_budgets(points: pd.DataFrame, tolerance: float = 0.15) -> np.ndarray:
    """A budget label per point: points whose FLOPs lie within ``tolerance`` (relative)
    of the first point of their group share a budget. A ``budget`` column, when present,
    is used as is."""
    if "budget" in points.columns:
        return points["budget"].to_numpy()
    lc = np.log(points["flops"].to_numpy(float))
    order = np.argsort(lc)
    labels = np.empty(len(lc), dtype=int)
    g, start = -1, -np.inf
    for i in order:
        if lc[i] - start > math.log1p(tolerance):
            g += 1
            start = lc[i]
        labels[i] = g
    return labels


def _vertex(u, loss, lu_range):
    """Vertex of the least-squares parabola loss(u); NaN when concave or outside the data."""
    c2, c1, c0 = np.polyfit(u, loss, 2)
    if c2 <= 0:
        return math.nan, math.nan, "concave"
    v = -c1 / (2 * c2)
    if not (lu_range[0] <= v <= lu_range[1]):
        return math.nan, math.nan, "outside"
    return v, c0 - c1 * c1 / (4 * c2), ""


def _profiles(points: pd.DataFrame, labels, min_points: int):
    out = []
    for lab in pd.unique(labels):
        g = points[labels == lab]
        if g["params"].nunique() < min_points:
            continue
        u = np.log(g["params"].to_numpy(float))
        lc = np.log(g["flops"].to_numpy(float))
        out.append({"label": lab, "C": float(np.exp(np.mean(lc))), "spread": float(np.expm1(np.ptp(lc))),
                    "u": u, "loss": g["loss"].to_numpy(float), "ld": np.log(g["tokens"].to_numpy(float)),
                    "range": (u.min(), u.max())})
    return out


def _profile_optimum(p, idx=None):
    u, loss, ld = (p["u"], p["loss"], p["ld"]) if idx is None else (p["u"][idx], p["loss"][idx], p["ld"][idx])
    if len(np.unique(u)) < 3:
        return None, "few"
    v, lmin, why = _vertex(u, loss, p["range"])
    if why:
        return None, why
    # D at the optimum from the profile's own (log N, log D) line: exact for C = 6ND, and
    # right for any other FLOP count too.
    q1, q0 = np.polyfit(u, ld, 1)
    return (p["C"], math.exp(v), math.exp(q0 + q1 * v), lmin), ""


def approach2(points, min_points: int = 3, bootstrap: int = 200, seed: int = 0, level: float = 0.90,
              tolerance: float = 0.15, columns=None, policy: str = "raise", optimum: str = "parabola",
              noise: float | None = None) -> AllocationFit:
    """Hoffmann et al. 2022 Approach 2: the optimum of each IsoFLOP profile, power laws
    through those optima.

    Points are grouped into compute budgets by their FLOPs (within ``tolerance``, or by a
    ``budget`` column); each budget with ``min_points`` or more model sizes is a profile.

    ``optimum="parabola"`` (Hoffmann et al.): a parabola of loss in log N per profile, its
    vertex the optimum; budgets whose parabola is concave or has its vertex outside the
    sizes tried are left out and reported. Intervals: ``bootstrap`` resamples of the
    points within each profile.

    ``optimum="akima"`` (Porian et al. 2024): see :func:`akima_optimum`; the optimum is
    the median argmin over ``bootstrap`` draws of Gaussian loss noise (sd ``noise`` nats;
    by default the dataset's ``attrs["loss_noise_sd"]``, else 0.005), and the power laws
    are weighted least squares with weights 1/std^2 of each budget's log N_opt. With
    ``bootstrap=0`` the authors' 1000 draws are used, since the weights need them.
    Intervals: the same weighted fit through one draw per budget, over the draws.
    """

    check_interval_args(level, bootstrap)
    if optimum not in OPTIMA:
        raise InputError(f"unknown optimum {optimum!r}", field="optimum", fix="use " + " or ".join(OPTIMA))
    if noise is not None and not (math.isfinite(noise) and noise > 0):
        raise InputError(f"must be a positive number of nats, got {noise}", field="noise", fix="e.g. 0.005")
    df = points if isinstance(points, pd.DataFrame) and "params" in points.columns else \
        load_points(points, columns=columns, policy=policy)
    noise_from = "given" if noise is not None else ("dataset" if df.attrs.get("loss_noise_sd") else "default")
    noise = noise if noise is not None else float(df.attrs.get("loss_noise_sd") or AKIMA_DEFAULT_NOISE)
    df = with_flops(df)
    labels = isoflop_budgets(df, tolerance)
    profiles = _profiles(df, labels, min_points)
    notes, warn = [], []
    n_groups = len(pd.unique(labels))
    if len(profiles) < n_groups:
        notes.append(f"{n_groups - len(profiles)} of {n_groups} FLOP groups have fewer than {min_points} "
                     "model sizes and are not IsoFLOP profiles")
    if optimum == "akima":
        return _approach2_akima(df, profiles, noise, noise_from, bootstrap or AKIMA_DRAWS, seed, level, notes,
                                warn, meta={"tolerance": tolerance, "min_points": min_points})
    optima, skipped = [], []
    for p in profiles:
        opt, why = _profile_optimum(p)
        if opt is None:
            skipped.append((p["C"], why))
        else:
            optima.append(opt)
    for c, why in skipped:
        msg = {"concave": "its parabola opens downwards", "outside": "its minimum lies outside the sizes tried",
               "few": "too few sizes"}[why]
        warn.append(f"budget C={c:.3g} left out: {msg}")
    if len(optima) < 2:
        raise TableError(f"{len(optima)} usable IsoFLOP profile(s): Approach 2 needs 2 or more budgets, each with "
                         f"{min_points}+ model sizes bracketing the minimum", field="flops",
                         fix="run an IsoFLOP sweep (several sizes at each of several FLOP budgets)")
    optima.sort(key=lambda o: o[0])
    C, N, D, L = (np.array(v) for v in zip(*optima))
    spread = max(p["spread"] for p in profiles)
    if spread > 0.05:
        warn.append(f"FLOPs vary by up to {100 * spread:.0f}% within a profile: these may not be IsoFLOP "
                    "profiles (give a budget column, or lower the tolerance)")
    samples = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        samples = np.full((bootstrap, 4), np.nan)
        for i in range(bootstrap):
            opts = []
            for p in profiles:
                o, _ = _profile_optimum(p, rng.integers(0, len(p["u"]), len(p["u"])))
                if o is not None:
                    opts.append(o)
            if len(opts) >= 2:
                c, n, d, _ = (np.array(v) for v in zip(*opts))
                samples[i] = _powerlaw_params(c, n, d)
    used = sum(len(p["u"]) for p in profiles)
    return _finish("approach2", C, N, D, L, level, samples, notes, warn, n_points=used,
                   n_sizes=int(df["params"].nunique()),
                   meta={"tolerance": tolerance, "min_points": min_points, "resample": "points within each profile",
                         "budgets_skipped": len(skipped)})


# ---------------------------------------------------------------------- Approach 2, Porian et al. 2024

#: How Approach 2 finds each profile's optimum: Hoffmann et al.'s parabola or Porian et al.'s Akima spline.
OPTIMA = ("parabola", "akima")
#: Porian et al. 2024's settings (their ``interp_flop``): grid points per interval between
#: model sizes, noise draws, and the floor of the std of log N_opt in grid steps (0.33 x 25).
AKIMA_GRID_PER_INTERVAL = 25
AKIMA_DRAWS = 1000
AKIMA_STD_FLOOR_STEPS = 0.33 * AKIMA_GRID_PER_INTERVAL
#: Their default seed-to-seed loss noise (sd, nats) for losses below e^3 nats.
AKIMA_DEFAULT_NOISE = 0.005


def akima_optimum(n, loss, noise: float, draws: int = AKIMA_DRAWS, rng=None) -> tuple[dict | None, str]:
    """The optimal N of one IsoFLOP profile as Porian et al. 2024 find it (Sec. 3 and App. C;
    ``analysis.interp_flop`` in their code).

    Log loss is interpolated in log N with an Akima spline (Akima 1970) through the points
    (the lowest loss where a size repeats) and minimised on a log grid of (k - 1) x 25 sizes,
    k the number of sizes. ``draws`` times, Gaussian noise of sd ``noise`` nats is added to
    every loss and the argmin found again. The profile is unusable when the noise-free
    argmin is the smallest or largest size ("edge") or fewer than half the draws have an
    interior argmin ("unstable"). Otherwise ``n_opt`` is the median of the interior
    argmins, ``log_std`` their std in log N, floored at 8.25 grid steps and inflated by
    draws / interior draws (the weights 1/std^2 of the power-law fit), ``stars`` the
    interior argmins in draw order and ``loss_opt`` the median interpolated minimum.
    Returns (result, "") or (None, reason).
    """
    from scipy.interpolate import Akima1DInterpolator

    rng = np.random.default_rng(rng)
    g = pd.DataFrame({"n": np.asarray(n, float), "loss": np.asarray(loss, float)}).groupby("n")["loss"].min()
    n, loss = g.index.to_numpy(float), g.to_numpy(float)
    if len(n) < 3:
        return None, "few"
    grid = np.geomspace(n[0], n[-1], (len(n) - 1) * AKIMA_GRID_PER_INTERVAL)
    x, xg = np.log(n), np.log(grid)
    j0 = int(np.argmin(Akima1DInterpolator(x, np.log(loss))(xg)))
    if j0 in (0, len(grid) - 1):
        return None, "edge"
    noisy = loss[:, None] + noise * rng.standard_normal((len(n), draws))
    curves = Akima1DInterpolator(x, np.log(np.maximum(noisy, 1e-300)), axis=0)(xg)
    j = np.argmin(curves, axis=0)
    inside = (j > 0) & (j < len(grid) - 1)
    n_in = int(inside.sum())
    if n_in < draws // 2:
        return None, "unstable"
    stars = grid[j[inside]]
    floor = AKIMA_STD_FLOOR_STEPS * (xg[1] - xg[0])
    log_std = max(float(np.std(np.log(stars))), floor) * draws / n_in
    lmin = curves[j[inside], np.flatnonzero(inside)]
    return {"n_opt": float(np.median(stars)), "n_opt_no_noise": float(grid[j0]), "log_std": log_std,
            "stars": stars, "loss_opt": float(np.exp(np.median(lmin))), "interior_draws": n_in}, ""


def _approach2_akima(df, profiles, noise, noise_from, draws, seed, level, notes, warn, meta) -> AllocationFit:
    rng = np.random.default_rng(seed)
    found, skipped = [], []
    for p in profiles:
        res, why = akima_optimum(np.exp(p["u"]), p["loss"], noise, draws, rng)
        if res is None:
            skipped.append((p["C"], why))
            continue
        # D at the optimum from the profile's own (log N, log D) line, as for the parabola.
        q1, q0 = np.polyfit(p["u"], p["ld"], 1)
        found.append((p["C"], res, lambda n, q0=q0, q1=q1: np.exp(q0 + q1 * np.log(n))))
    for c, why in skipped:
        msg = {"edge": "its interpolated minimum is the smallest or largest size tried",
               "unstable": "fewer than half the noise draws have a minimum inside the sizes tried",
               "few": "too few sizes"}[why]
        warn.append(f"budget C={c:.3g} left out: {msg}")
    if len(found) < 2:
        raise TableError(f"{len(found)} usable IsoFLOP profile(s): Approach 2 needs 2 or more budgets whose "
                         "minimum lies inside the sizes tried", field="flops",
                         fix="run an IsoFLOP sweep (several sizes at each of several FLOP budgets)")
    found.sort(key=lambda f: f[0])
    C = np.array([f[0] for f in found])
    N = np.array([f[1]["n_opt"] for f in found])
    D = np.array([f[2](f[1]["n_opt"]) for f in found])
    L = np.array([f[1]["loss_opt"] for f in found])
    w = np.array([f[1]["log_std"] ** -2 for f in found])
    # Porian et al.'s interval: the weighted fit through the i-th interior draw of every budget.
    m = min(len(f[1]["stars"]) for f in found)
    samples = np.empty((m, 4))
    for i in range(m):
        ni = np.array([f[1]["stars"][i] for f in found])
        di = np.array([f[2](v) for v, f in zip(ni, found)])
        samples[i] = _powerlaw_params(C, ni, di, w)
    src = {"given": "as given", "dataset": "the dataset authors' value",
           "default": "the default; pass noise= for your runs' seed-to-seed spread"}[noise_from]
    notes.append(f"optimum per budget (Porian et al. 2024): Akima spline of log loss in log N, argmin on a grid "
                 f"of {AKIMA_GRID_PER_INTERVAL} points per size interval, median over {draws} draws of Gaussian "
                 f"loss noise with sd {noise:g} nats ({src}); power laws weighted by 1/std^2 of log N_opt")
    extra = [{"n_opt_no_noise": f[1]["n_opt_no_noise"], "log_n_opt_std": f[1]["log_std"],
              "interior_draws": f[1]["interior_draws"]} for f in found]
    used = sum(len(p["u"]) for p in profiles)
    return _finish("approach2", C, N, D, L, level, samples, notes, warn, n_points=used,
                   n_sizes=int(df["params"].nunique()),
                   meta={**meta, "optimum": "akima", "noise": noise, "draws": draws,
                         "resample": f"loss noise, sd {noise:g} nats, {draws} draws", "budgets_skipped": len(skipped)},
                   weights=w, extra=extra)

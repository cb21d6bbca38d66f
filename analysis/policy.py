"""How ``--law auto`` chooses a law and sizes its intervals: one policy object, each knob
with its reason and the numbers that chose it.

The question a ladder is asked is how a model 3x to 50x larger than the largest one
fitted will do. So the evidence is judged at that distance:

1. **Distance backtest.** For every size s_j of the table, each candidate law is fitted
   to the sizes up to s_j and predicts every larger size; each held-out point keeps its
   distance d = N / s_j. The farthest splits are the ones that look like the question.
2. **A floor, for extrapolation.** Only laws with an irreducible loss E are candidates:
   a floorless power law predicts loss falling for ever, wins short backtests on curved
   data, and runs away far out (Kaplan et al. 2020's L(N, D) missed Gadre et al. 2024's
   7B by 14% from their runs below 1B; docs/analysis.md).
3. **Ties go to fewer exponents.** Laws whose backtest error is within :attr:`LawPolicy.tie`
   of the best are not told apart by the data; the one with the fewest parameters is
   taken (the shared exponent of Gadre et al. 2024 before Chinchilla's two), and the
   others widen the interval. Measured out of sample, no margin above 0 helped, so only
   exact ties apply.
4. **Points that cannot determine a law fall back to one they can.** Five points cannot
   fit Chinchilla's five parameters; they can fit gadre2024's four. A law whose fit to
   the whole table ends on a bound of its box (a collinear design, a floor at 0) is set
   aside for a candidate whose fit does not.
5. **Error grows with distance.** Held-out relative errors are modelled as growing
   linearly in ln d (the slope is fitted through the origin on the table's own splits),
   normally spread; the 90% interval at distance d widens by 2.06 x slope x ln d (the
   half-normal mean |e| = 0.80 sigma, so 1.645 sigma = 2.06 mean |e|), in quadrature with
   the same for tokens per parameter beyond those fitted, and with the fit's own scatter
   (a new run's loss scatters about the law wherever it is). A table with no split uses
   :attr:`LawPolicy.growth_prior`, and an answer beyond every split says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .backtest import BacktestResult, BacktestRow, LawChoice, auto_candidates, score_refit
from .errors import ToolkitError
from .laws import get_law
from .points import log_key, n_distinct
from .text import si

__all__ = ["Knob", "LawPolicy", "POLICY", "distance_backtest", "DistanceModel", "has_floor", "min_sizes"]

#: 1.645 / 0.7979: the 90% half-width of a normal error in units of its mean absolute value.
HALF_WIDTH_PER_MEAN_ABS = 1.6448536269514722 / math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class Knob:
    """A number the policy depends on, with why it has this value and what chose it."""

    value: float
    reason: str
    chosen_on: str = ""


@dataclass(frozen=True)
class LawPolicy:
    """The rules of ``--law auto`` (module docstring); ``docs/analysis.md`` measures each
    out of sample, leaving one source of public runs out at a time."""

    tie: Knob = Knob(0.0, "backtest errors within this fraction of the best count as a tie, won by the law with "
                          "fewer parameters; no margin improved the chosen law's errors on the sources left out, "
                          "so only an exact tie goes to the simpler law",
                     "leave-one-source-out over Porian et al. 2024, Muennighoff et al. 2023 and Gadre et al. 2024 "
                     "(python docs/studies/law_choice.py): 0 of 0, 0.1, 0.25, 0.5, 1 on each held-out source")
    growth_prior: Knob = Knob(0.03, "held-out relative error per e-fold of distance where the table has no split: "
                                    "the median slope of the public development tables' own distance backtests",
                              "the median over the 19 development tables with a split (Porian et al. 2024's 15, "
                              "Muennighoff et al. 2023, Gadre et al. 2024's three below-1B tables); 2.6-3.6% with "
                              "any one source left out (python docs/studies/law_choice.py)")
    #: most splits a backtest refits (log-spaced over the sizes): beyond that they repeat each other
    max_splits: int = 6
    require_floor: bool = True

    def candidates(self, points: pd.DataFrame, laws: Sequence[str] | None = None) -> tuple[str, ...]:
        """The laws auto may choose for this table: candidates whose inputs the table has,
        with a floor, and determinable from these points."""
        names = tuple(laws) if laws is not None else auto_candidates(points)
        if self.require_floor and laws is None:
            names = tuple(n for n in names if has_floor(n))
        return tuple(n for n in names if determinable(points, n))

    def choose(self, points: pd.DataFrame, laws: Sequence[str] | None = None, **fit_options) -> LawChoice:
        """The law for this table, its backtest at distance, and its error growth."""
        every = tuple(laws) if laws is not None else auto_candidates(points)
        names = self.candidates(points, laws)
        if not names:
            # nothing determinable: name the simplest law; its fit will say why it cannot be fitted
            fallback = min(every, key=lambda n: len(get_law(n).params))
            return LawChoice(fallback, f"auto: {fallback} (no candidate law can be determined by these "
                                       f"{len(points)} points)", None, fallback=True)
        bt = distance_backtest(points, names, max_splits=self.max_splits, **fit_options)
        scores = bt_scores(bt, names)
        fewest = min(names, key=lambda n: (len(get_law(n).params), names.index(n)))
        if not scores:
            why = "; ".join(bt.notes) or "no split leaves enough sizes to fit on"
            choice = LawChoice(fewest, f"auto: {fewest}, the candidate with the fewest parameters (nothing to "
                                       f"backtest: {why})", bt, fallback=True)
        else:
            # a law whose fit to the whole table ends on a bound is not pinned down by these
            # points (a collinear design, a floor at 0): another candidate that is, goes first
            pinned = {n: at_bound(points, n, fit_options) == [] for n in scores}
            pick, tied_names = pick_law(scores, pinned, self.tie.value)
            others = ", ".join(f"{n} {100 * v:.2g}%" for n, v in sorted(scores.items(), key=lambda kv: kv[1])
                               if n != pick)
            far = bt.farthest(pick)
            reason = (f"auto: {pick}, mean held-out error {100 * scores[pick]:.2g}% fitted to smaller sizes and "
                      f"predicting larger ones (up to {far:.3g}x)" + (f" vs {others}" if others else ""))
            if pick != min(scores, key=scores.get) and pinned[min(scores, key=scores.get)]:
                reason += f"; within {100 * self.tie.value:g}% of the best, and fewer parameters"
            unpinned = [n for n in scores if not pinned[n]]
            if unpinned and len(unpinned) < len(scores):
                reason += "; set aside: " + ", ".join(f"{n} (its fit ends on a bound)" for n in unpinned)
            dropped = [n for n in every if n not in names]
            if dropped:
                reason += "; not considered: " + ", ".join(
                    f"{n} ({'no floor' if not has_floor(n) else 'not determined by these points'})" for n in dropped)
            choice = LawChoice(pick, reason, bt, score=scores[pick])
        choice.tied_names = tied_names if scores else []
        choice.policy = self.describe()
        choice.distance_model = DistanceModel.from_backtest(
            bt, choice.law, self.growth_prior.value, tokens_backtest(points, choice.law, **fit_options))
        return choice

    def describe(self) -> dict:
        return {"tie": vars(self.tie), "growth_prior": vars(self.growth_prior), "max_splits": self.max_splits,
                "require_floor": self.require_floor}


POLICY = LawPolicy()


def has_floor(name: str) -> bool:
    """A law with an irreducible loss E (the loss it tends to with N and D unbounded)."""
    return "E" in get_law(name).params


def min_sizes(name: str) -> int:
    """Distinct model sizes a law's size term needs: one per size parameter (E + A / N^alpha: 3)."""
    law = get_law(name)
    return max(2, len(law.size_terms or ()))


def determinable(points: pd.DataFrame, name: str) -> bool:
    law = get_law(name)
    n_par = len(law.form.theta_names) if law.form is not None else len(law.params)
    return n_distinct(points["params"]) >= min_sizes(name) and len(points) > n_par


def at_bound(points: pd.DataFrame, name: str, fit_options: dict) -> list[str]:
    """The parameters of ``name``'s fit to every point that end on a bound of the law's box."""
    from .fit import fit_law
    from .result import bound_warnings

    options = {"progress": False, **fit_options, "uncertainty": False}
    options.pop("bootstrap", None)
    try:
        fit = fit_law(points, name, **options)
    except ToolkitError:
        return ["no fit"]
    return bound_warnings(fit.params, get_law(name).bounds)


def pick_law(scores: dict[str, float], pinned: dict[str, bool], tie: float) -> tuple[str, list[str]]:
    """The law the rules pick from backtest ``scores`` (lower is better): among the laws whose
    fit is ``pinned`` (not on a bound; all of them if none is), those within ``tie`` of the
    best, the one with the fewest parameters; and the other laws of that tie."""
    pool = {n: v for n, v in scores.items() if pinned.get(n, True)} or dict(scores)
    best = min(pool.values())
    tied = [n for n, v in pool.items() if v <= best * (1 + tie) + 1e-12]
    pick = min(tied, key=lambda n: (len(get_law(n).params), pool[n]))
    return pick, [n for n in tied if n != pick]


def bt_scores(bt: BacktestResult, names: Sequence[str]) -> dict[str, float]:
    """Per law: mean over the splits every law in ``names`` could be refitted on, of the mean
    held-out relative error (each split counts once, whatever its number of points)."""
    by_split: dict[str, dict[str, BacktestRow]] = {}
    for r in bt.rows:
        by_split.setdefault(r.split, {})[r.law] = r
    common = [s for s, rows in by_split.items()
              if all(n in rows and not rows[n].error for n in names)]
    if not common:
        return {}
    return {n: float(np.mean([by_split[s][n].mean_rel_error for s in common])) for n in names}


def _split_sizes(sizes: np.ndarray, need: int, max_splits: int) -> list[int]:
    """Indices j (fit sizes[:j+1], predict the rest) from the smallest determinable training
    part up, at most ``max_splits`` of them spread evenly."""
    js = list(range(need - 1, len(sizes) - 1))
    if len(js) <= max_splits:
        return js
    pick = np.unique(np.round(np.linspace(0, len(js) - 1, max_splits)).astype(int))
    return [js[i] for i in pick]


def distance_backtest(points: pd.DataFrame, laws: Sequence[str], max_splits: int = 6,
                      **fit_options) -> BacktestResult:
    """Each law fitted to the sizes up to s_j and scored on every larger size, for the
    split points s_j a law's size term allows (at most ``max_splits``, spread evenly).
    Rows carry each held-out point's distance N / s_j (``distances``)."""
    df = points.reset_index(drop=True)
    if "flops" not in df.columns:
        df = df.assign(flops=6.0 * df["params"] * df["tokens"])
    fit_options = {"progress": False, **fit_options, "uncertainty": False}
    fit_options.pop("bootstrap", None)
    keys = log_key(df["params"])
    sizes = np.unique(keys)
    real = {k: float(df["params"][keys == k].iloc[0]) for k in sizes}
    need = min(min_sizes(n) for n in laws) if laws else 2
    rows, notes = [], []
    splits = _split_sizes(sizes, need, max_splits)
    if not splits:
        notes.append(f"{len(sizes)} model sizes leave no larger size to predict from {need} fitted ones")
    for j in splits:
        train, test = df[keys <= sizes[j]], df[keys > sizes[j]]
        top = real[sizes[j]]
        name = f"N <= {si(top)}"
        desc = f"fitted to {j + 1} sizes up to {si(top)}, predicting {len(sizes) - j - 1} larger"
        dist = (test["params"].to_numpy(float) / top).tolist()
        if not any(determinable(train, law) for law in laws):
            notes.append(f"{j + 1} sizes up to {si(top)} ({len(train)} points) determine no law: split skipped")
            continue
        for law in laws:
            row = BacktestRow(law, name, desc, len(train), j + 1, len(test))
            if not determinable(train, law):
                row.error = f"{j + 1} sizes cannot determine {law}"
                rows.append(row)
                continue
            row = score_refit(row, train, test, law, fit_options)
            if not row.error:
                row.distances = dist
            rows.append(row)
    return BacktestResult(rows, tuple(laws), notes, kind="distance")


def tokens_backtest(points: pd.DataFrame, law: str, max_splits: int = 3, **fit_options) -> list[tuple[float, float]]:
    """(distance, |relative error|) of ``law`` fitted to the points up to a tokens-per-parameter
    threshold and predicting the longer runs of the same sizes; the distance is a point's
    tokens per parameter over the most its size was fitted at. The thresholds are the
    table's largest ``max_splits`` that leave a determinable fit: the splits most like
    extrapolating a fit to every point in D."""
    from .fit import fit_law

    df = points.reset_index(drop=True)
    tpp = (df["tokens"] / df["params"]).to_numpy(float)
    keys = log_key(df["params"])
    levels = np.unique(np.round(np.log(tpp), 3))
    options = {"progress": False, **fit_options, "uncertainty": False}
    options.pop("bootstrap", None)
    pairs, used = [], 0
    for lv in levels[::-1][1:]:
        if used >= max_splits:
            break
        cut = math.exp(lv) * (1 + 1e-6)
        train_mask = tpp <= cut
        train = df[train_mask]
        top = {k: tpp[train_mask & (keys == k)].max() for k in np.unique(keys[train_mask])}
        test_mask = ~train_mask & np.isin(keys, list(top))
        if not test_mask.any() or not determinable(train, law):
            continue
        try:
            fit = fit_law(train, law, **options)
        except ToolkitError:
            continue
        test = df[test_mask]
        pred = np.asarray(fit.predict_table(test), dtype=float)
        rel = np.abs(pred / test["loss"].to_numpy(float) - 1.0)
        dist = tpp[test_mask] / np.array([top[k] for k in keys[test_mask]])
        pairs += [(float(d), float(e)) for d, e in zip(dist, rel) if d > 1.0 and np.isfinite(e)]
        used += 1
    return pairs


def _slope(pairs) -> tuple[float, float]:
    """Least-squares slope of |e| on ln d through the origin, and the farthest d."""
    ln_d = np.log([p[0] for p in pairs])
    err = np.array([p[1] for p in pairs])
    return float(np.sum(err * ln_d) / np.sum(ln_d ** 2)), float(np.exp(ln_d.max()))


@dataclass
class DistanceModel:
    """Held-out relative error against distance: in size, d = N / (largest fitted N), mean
    |e| = ``growth`` x ln d; in tokens, d_D = (D/N) / (the most D/N fitted at that size),
    mean |e| = ``growth_tokens`` x ln d_D; each slope fitted through the origin on the
    table's own splits (:func:`distance_backtest`, :func:`tokens_backtest`). The two add in
    quadrature."""

    growth: float
    source: str
    #: the farthest distance a split reached (1.0: none)
    reach: float = 1.0
    n_points: int = 0
    points: list = field(default_factory=list, repr=False)
    growth_tokens: float = 0.0
    tokens_source: str = ""
    tokens_reach: float = 1.0
    #: RMS relative residual of the final fit: a new run scatters about the law by this much
    #: wherever it is, so no prediction interval of a measured loss is narrower
    noise: float = 0.0

    @classmethod
    def from_backtest(cls, bt: BacktestResult | None, law: str, prior: float,
                      tokens_pairs: list | None = None) -> "DistanceModel":
        pairs = []
        if bt is not None:
            for r in bt.rows_of(law, ok=True):
                d = getattr(r, "distances", None)
                if d is None:
                    continue
                pairs += [(float(x), abs(p / o - 1.0)) for x, p, o in zip(d, r.pred, r.observed) if x > 1.0]
        if tokens_pairs:
            gt, reach_t = _slope(tokens_pairs)
            tok = dict(growth_tokens=gt, tokens_source=f"this table's {len(tokens_pairs)} longer runs",
                       tokens_reach=reach_t)
        else:
            tok = dict(growth_tokens=prior, tokens_source="prior (no longer run of a fitted size to predict)")
        if not pairs:
            return cls(prior, "prior (no split of this table reaches beyond its fitted sizes)", **tok)
        g, reach = _slope(pairs)
        return cls(g, f"this table's {len(pairs)} held-out points", reach=reach, n_points=len(pairs), points=pairs,
                   **tok)

    def half_width(self, distance, level: float = 0.90, tokens_distance=1.0) -> np.ndarray:
        """Relative half-width of the ``level`` interval at ``distance`` in size and
        ``tokens_distance`` in tokens per parameter (0 inside the fitted range of both)."""
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
        ln_d = np.log(np.maximum(np.asarray(distance, dtype=float), 1.0))
        ln_t = np.log(np.maximum(np.asarray(tokens_distance, dtype=float), 1.0))
        # mean |e| = g ln d is a normal error of sd g ln d / 0.798; the run's own scatter adds in quadrature
        sd = np.hypot(np.hypot(self.growth * ln_d, self.growth_tokens * ln_t) / math.sqrt(2.0 / math.pi), self.noise)
        return z * sd

    def to_dict(self) -> dict:
        return {"growth_per_efold": self.growth, "source": self.source, "reach": self.reach,
                "n_points": self.n_points, "growth_per_efold_tokens": self.growth_tokens,
                "tokens_source": self.tokens_source, "tokens_reach": self.tokens_reach, "noise": self.noise}

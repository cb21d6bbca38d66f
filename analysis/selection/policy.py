"""How ``--law auto`` chooses a law and sizes its intervals: one policy object, each knob
with its reason and the numbers that chose it.

The question a ladder is asked is how a model 3x to 50x larger than the largest one
fitted will do. So the evidence is judged at that distance:

0. **Runs the law describes.** Runs under :attr:`LawPolicy.min_tokens_per_param` tokens per
   parameter are set aside before anything is fitted (the threshold comes down to the largest
   size's longest run when that is shorter: short is judged against what this ladder's
   largest model got, and that size stays in the fit): a short run spends much of its
   steps in warmup and at a high learning rate, sits above a law of N and D, and bends its
   data term, so that the law says small models catch up on fewer tokens than they need.
1. **Distance backtest.** For every size s_j of the table, each candidate law is fitted
   to the sizes up to s_j and predicts every larger size; each held-out point keeps its
   distance d = N / s_j. The farthest splits are the ones that look like the question.
2. **A floor, for extrapolation.** Only laws with an irreducible loss E are candidates:
   a floorless power law predicts loss falling for ever, wins short backtests on curved
   data, and runs away far out (Kaplan et al. 2020's L(N, D) missed Gadre et al. 2024's
   7B by 14% from their runs below 1B; docs/analysis.md).
2b. **A law the data reject is not chosen.** Gadre et al. 2024's law is Chinchilla's with
   one exponent for size and data; when Chinchilla's own fit puts alpha and beta more than
   :data:`analysis.selection.checks.REJECT_Z` standard errors apart (the check every fit
   reports; the standard error counts independent runs, or sizes without a run column, and
   the bar is Student's t for that many: :func:`analysis.selection.checks.constraint_test`),
   the shared exponent is not chosen while Chinchilla's fit is determined.
3. **Ties go to fewer exponents.** Laws whose backtest error is within :attr:`LawPolicy.tie`
   of the best are not told apart by the data; the one with the fewest parameters is
   taken (the shared exponent of Gadre et al. 2024 before Chinchilla's two), and the
   others widen the interval. Chosen out of sample, the margin is 1: a law with more
   exponents is taken only when its backtest error is under half the simpler law's.
4. **Points that cannot determine a law fall back to one they can.** Five points cannot
   fit Chinchilla's five parameters; they can fit gadre2024's four. A law whose fit to
   the whole table ends on a bound of its box (a collinear design, a floor at 0) is set
   aside for a candidate whose fit does not.
5. **Error is the fit's scatter, growing with distance as fast as this table's errors did.**
   A new run's relative error has sd = s sqrt(1 + c z_N^2 + c_t z_t^2), as a regression's
   prediction interval does: s is the fit's robust relative scatter (1.48 x the median
   absolute residual, corrected for the parameters fitted), z_N and z_t the distances of ln N
   and ln D/N from the centre of the fitted points in units of their standard deviations.
   Each direction's growth is measured on the table's own splits in that direction
   (:func:`error_growths`): c on the distance backtest (fitted to the smaller sizes), c_t on
   fits to the shorter runs predicting the longer (:func:`tokens_backtest`), each the value
   at which its splits' held-out errors, in units of s and each against its split's own
   design, have the median absolute value of a normal error. A table with no split in
   tokens per parameter (fewer than three budgets) takes c for both; one whose backtest
   scores no split takes the :attr:`LawPolicy.leverage` prior; a fit with too few residual
   degrees of freedom to measure its scatter takes :attr:`LawPolicy.scale_prior`. An answer
   beyond every backtest split says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..common.errors import ToolkitError
from ..common.text import si
from ..data.points import log_key, n_distinct, with_flops
from ..fitting.fit import fit_law
from ..fitting.result import bound_warnings
from ..laws import get_law
from .backtest import BacktestResult, BacktestRow, LawChoice, auto_candidates, score_refit
from .checks import constraint_test

__all__ = ["Knob", "LawPolicy", "POLICY", "choose_law", "distance_backtest", "tokens_backtest", "ErrorModel",
           "error_growth", "error_growths", "leverage_words", "tokens_growth_words", "score_split", "has_floor",
           "min_sizes", "robust_scale"]

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

    tie: Knob = Knob(1.0, "backtest errors within this fraction of the best count as a tie, won by the law with "
                          "fewer parameters (the others widen the interval): a backtest error less than half the "
                          "simpler law's is needed to choose the law with more exponents",
                     "leave-one-source-out over Porian et al. 2024, Muennighoff et al. 2023 and Gadre et al. 2024 "
                     "(python docs/studies/law_choice.py), from 0, 0.1, 0.25, 0.5, 1: 1 with Gadre or Muennighoff "
                     "held out, 0 with Porian held out, 1 on all three")
    leverage: Knob = Knob(2.5, "the 90% interval's sd is the fit's scatter times sqrt(1 + c z_N^2 + c_t z_t^2), z_N "
                               "and z_t the question's distances from the centre of the fitted design in standard "
                               "deviations of ln N and ln D/N; c is measured on the table's own distance backtest "
                               "and c_t on its fits to the shorter runs (error_growths: the values at which their "
                               "held-out errors, in units of the fit's scatter, have a normal median); this value "
                               "is the prior for both in a table whose backtest scores no split: the median of the "
                               "development tables' own c",
                          "the median over the 19 development tables whose backtest scores a split (Porian et al. "
                          "2024's 15, Muennighoff et al. 2023, Gadre et al. 2024's three below-1B tables), "
                          "their short runs set aside; 1.3 to 3.1 with any one source left out (python "
                          "docs/studies/law_choice.py)")
    scale_prior: Knob = Knob(0.0039, "the relative scatter of a fit with fewer than min_dof residual degrees of "
                                     "freedom: the median scatter of the public development tables' own fits",
                             "the median over the 19 development tables that measure their own scatter (Porian et "
                             "al. 2024's 15, Muennighoff et al. 2023, Gadre et al. 2024's three below-1B tables), "
                             "their short runs set aside; 0.37-0.62% with any one source left out (python "
                             "docs/studies/law_choice.py)")
    min_tokens_per_param: Knob = Knob(
        20.0, "runs trained on fewer tokens per parameter are set aside before any law is fitted (the threshold "
              "comes down to the largest size's longest run when that is shorter, so that size stays): a short run "
              "spends much of its steps in warmup and at a high learning rate, sits above a law of N and D (Gadre et "
              "al. 2024's runs at 5 tokens per parameter lie 6% above it) and bends the law's data term",
        "leave-one-source-out over Porian et al. 2024, Muennighoff et al. 2023 and Gadre et al. 2024 (python "
        "docs/studies/law_choice.py): of 0, 5, 10 and 20, the threshold that minimises the other sources' mean "
        "absolute error: 20 with Gadre or Porian held out, 10 with Muennighoff held out, 20 on all three")
    #: residual degrees of freedom a fit needs to measure its own scatter
    min_dof: int = 3
    #: the least standard deviation of ln N and ln D/N in z: a design with one budget (or one
    #: size) says nothing about that direction, so half an e-fold stands in for its spread.
    #: Checked leaving one source out (docs/analysis.md; law_choice.py --spread-floor 0.25, 1):
    #: 0.25 scores within 0.05 points of 0.5 on every source's mean interval score (and holds
    #: fewer of Porian et al.'s tokens-to-match pairs), and 1 widens Porian et al.'s intervals
    #: for no gain elsewhere
    spread_floor: float = 0.5
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
        bt = distance_backtest(points, names, max_splits=self.max_splits, spread_floor=self.spread_floor,
                                **fit_options)
        scores = bt_scores(bt, names)
        fewest = min(names, key=lambda n: (len(get_law(n).params), names.index(n)))
        if not scores:
            why = "; ".join(bt.notes) or "no split leaves enough sizes to fit on"
            choice = LawChoice(fewest, f"auto: {fewest}, the candidate with the fewest parameters (nothing to "
                                       f"backtest: {why})", bt, fallback=True)
        else:
            # a law whose fit to the whole table ends on a bound is not pinned down by these
            # points (a collinear design, a floor at 0): another candidate that is, goes first
            # one fit of each law to the whole table serves both rules; a law whose constraint
            # is tested (its parent) keeps its covariance, the others skip it
            parents = {get_law(n).parent for n in scores if get_law(n).equal} & set(names)
            whole = {n: whole_fit(points, n, fit_options, uncertainty=n in parents) for n in {*scores, *parents}}
            pinned = {n: at_bound(points, n, fit_options, fit=whole[n]) == [] for n in scores}
            rejected = {n: rejected_constraint(points, n, names, fit_options, parent_fit=whole.get(get_law(n).parent))
                        for n in scores}
            pick, tied_names = pick_law(scores, pinned, self.tie.value, rejected)
            others = ", ".join(f"{n} {100 * v:.2g}%" for n, v in sorted(scores.items(), key=lambda kv: kv[1])
                               if n != pick)
            far = bt.farthest(pick)
            reason = (f"auto: {pick}, mean held-out error {100 * scores[pick]:.2g}% fitted to smaller sizes and "
                      f"predicting larger ones (up to {far:.3g}x)" + (f" vs {others}" if others else ""))
            if pick != min(scores, key=scores.get) and pinned[min(scores, key=scores.get)]:
                reason += f"; within a factor {1 + self.tie.value:g} of the best, and fewer parameters"
            unpinned = [n for n in scores if not pinned[n]]
            if unpinned and len(unpinned) < len(scores):
                reason += "; set aside: " + ", ".join(f"{n} (its fit ends on a bound)" for n in unpinned)
            refused = [n for n in scores if rejected[n] and n != pick]
            if refused:
                reason += "; not chosen: " + ", ".join(f"{n} ({rejected[n]})" for n in refused)
            dropped = [n for n in every if n not in names]
            if dropped:
                reason += "; not considered: " + ", ".join(
                    f"{n} ({'no floor' if not has_floor(n) else 'not determined by these points'})" for n in dropped)
            choice = LawChoice(pick, reason, bt, score=scores[pick])
        choice.tied_names = tied_names if scores else []
        choice.policy = self.describe()
        choice.reach = bt.farthest(choice.law)
        return choice

    def error_model(self, fit, points: pd.DataFrame, reach: float = 1.0,
                    backtest: BacktestResult | None = None, **fit_options) -> ErrorModel:
        """The :class:`ErrorModel` of ``fit`` (fitted to ``points``) under this policy: its
        growth c in size measured on ``backtest``'s splits of the fitted law, and c_t in tokens
        per parameter on the law refitted to the table's shorter runs (:func:`tokens_backtest`,
        with ``fit_options``; :func:`error_growths`); the :attr:`leverage` prior where neither
        was scored."""
        rel = np.asarray(fit.predict_table(points), dtype=float) / points["loss"].to_numpy(float) - 1.0
        law = fit.law_obj
        tokens = uses_tokens(points, fit.law)
        rows = backtest.rows_of(fit.law, ok=True) if backtest is not None and backtest.kind == "distance" else []
        longer = (tokens_backtest(points, fit.law, self.max_splits, self.spread_floor, **fit_options)
                  if tokens else [])
        return ErrorModel.from_residuals(
            rel, len(law.params), points["params"].to_numpy(float),
            points["tokens"].to_numpy(float) if tokens else None, prior=self.scale_prior.value,
            leverage=self.leverage.value, spread_floor=self.spread_floor, min_dof=self.min_dof, reach=reach,
            splits=rows, tokens_splits=longer)

    def describe(self) -> dict:
        return {"tie": vars(self.tie), "leverage": vars(self.leverage), "scale_prior": vars(self.scale_prior),
                "min_tokens_per_param": vars(self.min_tokens_per_param),
                "min_dof": self.min_dof, "spread_floor": self.spread_floor, "max_splits": self.max_splits,
                "require_floor": self.require_floor}


POLICY = LawPolicy()


def choose_law(points: pd.DataFrame, laws: Sequence[str] | None = None, **fit_options) -> LawChoice:
    """``--law auto``'s choice for ``points`` (:meth:`LawPolicy.choose` of :data:`POLICY`):
    the floored law that best predicts larger sizes from smaller ones, with its reason."""
    return POLICY.choose(points, laws=laws, **fit_options)


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


#: "not given" for the prefitted-fit arguments (None there means the fit failed)
_UNSET = object()


def whole_fit(points: pd.DataFrame, name: str, fit_options: dict, uncertainty: bool = False):
    """``name`` fitted to every point (covariance only with ``uncertainty``), or None when it
    cannot be fitted."""
    options = {"progress": False, **fit_options, "uncertainty": uncertainty}
    options.pop("bootstrap", None)
    try:
        return fit_law(points, name, **options)
    except ToolkitError:
        return None


def at_bound(points: pd.DataFrame, name: str, fit_options: dict, fit=_UNSET) -> list[str]:
    """The parameters of ``name``'s fit to every point (``fit``, when already made) that end on
    a bound of the law's box."""
    if fit is _UNSET:
        fit = whole_fit(points, name, fit_options)
    if fit is None:
        return ["no fit"]
    return bound_warnings(fit.params, get_law(name).bounds)


def rejected_constraint(points: pd.DataFrame, name: str, names: Sequence[str], fit_options: dict,
                        parent_fit=_UNSET) -> str:
    """Why the data reject ``name``'s constraint of a more general candidate (Gadre et al.'s
    shared exponent inside Chinchilla's law: the Wald test of the free fit,
    :func:`analysis.selection.checks.constraint_test`, the self-check every fit reports), or "".
    ``parent_fit``: the general law's fit to every point with its covariance, when already made."""
    law = get_law(name)
    if not law.parent or not law.equal or law.parent not in names:
        return ""
    free = whole_fit(points, law.parent, fit_options, uncertainty=True) if parent_fit is _UNSET else parent_fit
    if free is None:
        return ""
    test = constraint_test(free, law)
    if test is None or not test.rejected:
        return ""
    a, b = law.equal
    return f"the data reject its {a} = {b}: {law.parent}'s are {abs(test.z):.1f} standard errors apart ({test.bar})"


def pick_law(scores: dict[str, float], pinned: dict[str, bool], tie: float,
             rejected: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """The law the rules pick from backtest ``scores`` (lower is better): among the laws whose
    fit is ``pinned`` (not on a bound; all of them if none is) and whose constraint the data
    do not reject (``rejected``; all of them if every one is), those within ``tie`` of the
    best, the one with the fewest parameters; and the other laws of that tie."""
    pool = {n: v for n, v in scores.items() if pinned.get(n, True)} or dict(scores)
    pool = {n: v for n, v in pool.items() if not (rejected or {}).get(n)} or pool
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
                      spread_floor: float | None = None, **fit_options) -> BacktestResult:
    """Each law fitted to the sizes up to s_j and scored on every larger size, for the
    split points s_j a law's size term allows (at most ``max_splits``, spread evenly).
    Rows carry each held-out point's distance N / s_j (``distances``) and its squared
    standardised distance from the split's fitted design (``z2``, each spread at least
    ``spread_floor``; None: the policy's)."""
    spread_floor = POLICY.spread_floor if spread_floor is None else spread_floor
    df = points.reset_index(drop=True)
    df = with_flops(df)
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
            row = score_split(row, train, test, law, fit_options, spread_floor)
            if not row.error:
                row.distances = dist
            rows.append(row)
    return BacktestResult(rows, tuple(laws), notes, kind="distance")


def score_split(row: BacktestRow, train: pd.DataFrame, test: pd.DataFrame, law: str, fit_options: dict,
                spread_floor: float) -> BacktestRow:
    """:func:`score_refit`, and each held-out point's squared distance from this split's own
    fitted design (``row.z2``): what the error growth (:func:`error_growth`) is measured against."""
    row = score_refit(row, train, test, law, fit_options)
    if not row.error:
        tokens = uses_tokens(train, law)
        centre, spread = design(train["params"], train["tokens"] if tokens else None, spread_floor)
        z2_n, z2_t = design_z2_parts(centre, spread, test["params"], test["tokens"] if tokens else None)
        row.z2 = (z2_n + z2_t).tolist()
        row.z2_tokens = z2_t.tolist() if tokens else None
    return row


def tokens_backtest(points: pd.DataFrame, law: str, max_splits: int = 6, spread_floor: float | None = None,
                    **fit_options) -> list[BacktestRow]:
    """``law`` fitted to the runs up to m_j tokens per parameter (every size) and scored on the
    longer ones, for up to ``max_splits`` budgets m_j spread evenly, each fit seeing at least
    two budgets (budgets equal to 1% in D/N count as one): the table's own record of how its
    errors grow in tokens per parameter. Rows carry each held-out point's z^2 from the
    split's own design, as :func:`distance_backtest`'s do; empty for a law without tokens or a
    table with fewer than three budgets."""
    spread_floor = POLICY.spread_floor if spread_floor is None else spread_floor
    df = points.reset_index(drop=True)
    if not uses_tokens(df, law):
        return []
    fit_options = {"progress": False, **fit_options, "uncertainty": False}
    fit_options.pop("bootstrap", None)
    level = np.round(np.log(df["tokens"].to_numpy(float) / df["params"].to_numpy(float)), 2)
    budgets = np.unique(level)
    rows = []
    for j in _split_sizes(budgets, 2, max_splits):
        train, test = df[level <= budgets[j]], df[level > budgets[j]]
        if not determinable(train, law):
            continue
        top = float((train["tokens"] / train["params"]).max())
        row = BacktestRow(law, f"D/N <= {top:.3g}", f"fitted to the runs up to {top:.3g} tokens per parameter, "
                          f"predicting {len(test)} longer", len(train), n_distinct(train["params"]), len(test))
        row = score_split(row, train.reset_index(drop=True), test.reset_index(drop=True), law, fit_options,
                          spread_floor)
        if not row.error:
            rows.append(row)
    return rows


#: A normal sample's standard deviation over its median absolute deviation (1 / Phi^-1(3/4)).
NORMAL_SD_PER_MAD = 1.482602218505602


def robust_scale(rel_residuals, n_params: int) -> float:
    """The fit's relative scatter: 1.4826 x the median absolute relative residual (the
    standard deviation of a normal sample, unmoved by a few runs the law does not fit), times
    sqrt(n / (n - p)) for the p parameters fitted to the n points. On few points it reads the
    noise low (a Huber fit nearly passes through p points: 34% to 81% of a known noise on 10
    to 16 points); it is the unit the error model's c is measured in, and an estimator that
    reads the noise right did not size far intervals better (docs/analysis.md, --scale rest)."""
    r = np.abs(np.asarray(rel_residuals, dtype=float))
    n = len(r)
    return float(NORMAL_SD_PER_MAD * np.median(r) * math.sqrt(n / max(n - n_params, 1)))


def uses_tokens(points: pd.DataFrame, name: str) -> bool:
    """Whether law ``name``'s error model measures distance in tokens per parameter too."""
    return "tokens" in points.columns and "D" in (get_law(name).inputs or ())


def design(params, tokens, spread_floor: float) -> tuple[tuple, tuple]:
    """(centre, spread): mean and standard deviation of ln N and of ln D/N (``tokens`` None:
    ln N only) over a fit's points, each spread at least ``spread_floor`` (a design with one
    size or one budget says nothing about that direction)."""
    ln_n = np.log(np.asarray(params, dtype=float))
    centre, spread = [float(ln_n.mean())], [max(float(ln_n.std()), spread_floor)]
    if tokens is not None:
        ln_t = np.log(np.asarray(tokens, dtype=float)) - ln_n
        centre.append(float(ln_t.mean()))
        spread.append(max(float(ln_t.std()), spread_floor))
    return tuple(centre), tuple(spread)


def design_z2_parts(centre, spread, N, D=None) -> tuple[np.ndarray, np.ndarray]:
    """The two parts of :func:`design_z2`: the squared standardised distance in ln N, and in
    ln D/N (zeros when D is None or the design has no tokens)."""
    ln_n = np.log(np.asarray(N, dtype=float))
    z2_n = ((ln_n - centre[0]) / spread[0]) ** 2
    if D is None or len(centre) < 2:
        return z2_n, np.zeros_like(z2_n)
    ln_t = np.log(np.asarray(D, dtype=float)) - ln_n
    return z2_n, ((ln_t - centre[1]) / spread[1]) ** 2


def design_z2(centre, spread, N, D=None) -> np.ndarray:
    """Squared standardised distance of (N, D) from a design's ``centre`` (in ln N only when
    D is None or the design has no tokens)."""
    z2_n, z2_t = design_z2_parts(centre, spread, N, D)
    return z2_n + z2_t


#: The median of |x| for a standard normal x: the growth c makes the table's own standardised
#: held-out errors have this median.
_NORMAL_MEDIAN_ABS = 0.6744897501960817


def _held_out(rows: Sequence[BacktestRow]):
    """(|relative error|, z^2 in ln N, z^2 in ln D/N, weight) over the scored rows' held-out
    points, each split weighted equally whatever its number of points; None without any."""
    es, z2n, z2t, ws = [], [], [], []
    for r in rows:
        if r.error or not r.z2 or r.pred is None or not r.observed:
            continue
        e = np.asarray(r.pred, dtype=float) / np.asarray(r.observed, dtype=float) - 1.0
        z2 = np.asarray(r.z2, dtype=float)
        t2 = np.asarray(r.z2_tokens, dtype=float) if r.z2_tokens is not None else np.zeros_like(z2)
        es.append(np.abs(e))
        z2n.append(z2 - t2)
        z2t.append(t2)
        ws.append(np.full(len(e), 1.0 / len(e)))
    if not es:
        return None
    return tuple(np.concatenate(v) for v in (es, z2n, z2t, ws))


def _matching_growth(e, w, scale: float, growth) -> float:
    """The c >= 0 at which e / (scale sqrt(growth(c))) has a standard normal's median absolute
    value (weighted by w); growth(c) rises with c, so that median falls: bisection. 0 when
    the errors are that small without growth."""
    def median(c: float) -> float:
        u = e / (scale * np.sqrt(growth(c)))
        order = np.argsort(u)
        cum = np.cumsum(w[order])
        return float(u[order][np.searchsorted(cum, 0.5 * cum[-1])])

    if median(0.0) <= _NORMAL_MEDIAN_ABS:
        return 0.0
    lo, hi = 0.0, 1.0
    while median(hi) > _NORMAL_MEDIAN_ABS and hi < 1e6:
        lo, hi = hi, 2.0 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if median(mid) > _NORMAL_MEDIAN_ABS else (lo, mid)
    return hi


def error_growth(rows: Sequence[BacktestRow], scale: float) -> float | None:
    """How fast this table's own held-out errors grew with distance: the c >= 0 at which the
    distance backtest's errors e, in units of the final fit's scatter, e / (scale sqrt(1 + c
    z^2)), have the median absolute value of a standard normal (each split weighted equally,
    whatever its number of points; z^2 each point's distance from its split's design). 0 when
    they are that small without growth; None when no split was scored."""
    held = _held_out(rows)
    if held is None or not scale > 0:
        return None
    e, z2n, z2t, w = held
    return _matching_growth(e, w, scale, lambda c: 1.0 + c * (z2n + z2t))


def error_growths(size_rows: Sequence[BacktestRow], tokens_rows: Sequence[BacktestRow],
                  scale: float) -> tuple[float | None, float | None]:
    """(c, c_t): the error growth per squared standard deviation of ln N and of ln D/N, for
    sd = scale sqrt(1 + c z_N^2 + c_t z_t^2). Each is measured on the splits that extrapolate
    in its direction: c on the splits in size (``size_rows``, :func:`distance_backtest`),
    c_t on the splits in tokens per parameter (``tokens_rows``, :func:`tokens_backtest`), each
    making its own splits' errors have a normal median given the other (solved in turn until
    both settle). A direction without scored splits takes the other's c (None for c_t: one c
    for both, :func:`error_growth`); (None, None) when neither was scored."""
    if not scale > 0:
        return None, None
    size, tokens = _held_out(size_rows), _held_out(tokens_rows)
    if tokens is None:
        return error_growth(size_rows, scale), None
    if size is None:
        return error_growth(tokens_rows, scale), None
    c = c_t = error_growth([*size_rows, *tokens_rows], scale)
    for _ in range(100):
        new_c = _matching_growth(size[0], size[3], scale, lambda k: 1.0 + k * size[1] + c_t * size[2])
        new_t = _matching_growth(tokens[0], tokens[3], scale, lambda k: 1.0 + new_c * tokens[1] + k * tokens[2])
        done = abs(new_c - c) <= 1e-9 * (1 + c) and abs(new_t - c_t) <= 1e-9 * (1 + c_t)
        c, c_t = new_c, new_t
        if done:
            break
    return c, c_t


def leverage_words(splits: int, spread=None, brief: bool = False) -> str:
    """Where an error model's c comes from, in words: measured on ``splits`` backtest splits
    (0: the prior), ``spread`` the least and largest c leaving one split out; ``brief`` for a
    clause inside a longer line (extrapolate's Distance line), else the fit's interval note."""
    if not splits:
        return "prior" if brief else "prior: no backtest split of this table could be scored"
    many = splits != 1
    owner = "splits'" if many else "split's"
    text = (f"measured on {splits} backtest split{'s' if many else ''}" if brief else
            f"this table's own backtest: at this c its {splits} {owner} held-out errors, in units of this fit's "
            "scatter, have a normal error's median")
    if spread:
        text += f"; {spread[0]:.2g} to {spread[1]:.2g} " + ("leaving one out" if brief else "with any one split left out")
    return text


def tokens_growth_words(c_t: float | None, splits: int, spread=None, brief: bool = False) -> str:
    """Where an error model's c_t comes from, in words (:func:`leverage_words`' twin for the
    growth in tokens per parameter): ``splits`` splits in tokens per parameter, ``spread`` the
    least and largest c_t leaving one out; None: the table has no such split and c serves both."""
    if c_t is None:
        return "c_t = c (no split in tokens per parameter)"
    text = (f"c_t = {c_t:.2g} (measured on {splits} split{'s' if splits != 1 else ''} in tokens per parameter"
            + ("" if brief else ", fitted to the shorter runs and predicting the longer"))
    if spread:
        text += f"; {spread[0]:.2g} to {spread[1]:.2g} " + ("leaving one out" if brief else "with any one left out")
    return text + ")"


def beside_error_model(pred, w, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """The interval of a prediction ``pred`` whose error model gives relative half-width ``w``,
    beside an interval (``lo``, ``hi``) from the bootstrap and the laws tied with the choice:
    ``pred`` (1 -+ w), reaching further only where (lo, hi) does. The error model is measured
    on the chosen law's own held-out errors (its parameters' estimation error and its form's,
    at distance), which the bootstrap and the tied laws estimate again: they extend the
    interval where they reach beyond it and are not added to it."""
    pred, w = np.asarray(pred, dtype=float), np.asarray(w, dtype=float)
    return np.minimum(lo, pred * (1 - w)), np.maximum(hi, pred * (1 + w))


@dataclass
class ErrorModel:
    """A prediction's relative error, as a regression's prediction interval sizes it: the
    fit's own scatter ``scale``, growing with how far the question lies from the centre of the
    fitted design, sd = scale x sqrt(1 + leverage x z_N^2 + leverage_tokens x z_t^2), where
    z_N = (ln N - mean) / sd and z_t = (ln D/N - mean) / sd over the fitted points (each sd at
    least ``spread_floor``)."""

    scale: float
    scale_source: str
    #: mean and standard deviation of ln N and of ln(D/N) over the fitted points (D/N: None
    #: for a law without tokens)
    centre: tuple
    spread: tuple
    leverage: float = 1.0
    #: the farthest distance (N over the largest fitted N) a backtest split reached (1.0: none)
    reach: float = 1.0
    n_residuals: int = 0
    #: how many backtest splits the leverage c was measured on (0: the policy's prior)
    leverage_splits: int = 0
    #: the least and largest c with any one of those splits left out (None: fewer than two):
    #: how firmly the table's splits pin c down
    leverage_range: tuple | None = None
    #: c_t, the growth per squared sd of ln D/N, measured on splits in tokens per parameter
    #: (:func:`tokens_backtest`); None: the table has none, and ``leverage`` serves both
    leverage_tokens: float | None = None
    leverage_tokens_splits: int = 0
    leverage_tokens_range: tuple | None = None

    @classmethod
    def from_residuals(cls, rel_residuals, n_params: int, params, tokens=None, *, prior: float,
                       leverage: float, spread_floor: float, min_dof: int, reach: float = 1.0,
                       splits: Sequence[BacktestRow] = (),
                       tokens_splits: Sequence[BacktestRow] = ()) -> "ErrorModel":
        """The model for a fit with these relative residuals at these points (``tokens`` None:
        size only); fewer than ``min_dof`` residual degrees of freedom take the ``prior`` scale.
        c is measured on the fitted law's scored distance-backtest ``splits`` and c_t on its
        scored ``tokens_splits`` (:func:`error_growths`); ``leverage`` is the prior where
        neither was scored."""
        r = np.asarray(rel_residuals, dtype=float)
        dof = len(r) - n_params
        if dof >= min_dof:
            scale = robust_scale(r, n_params)
            src = f"this fit's {len(r)} points (1.48 x median |residual| x sqrt(n/(n-p)))"
        else:
            scale = prior
            src = (f"prior ({len(r)} points leave {max(dof, 0)} degrees of freedom for {n_params} parameters; "
                   f"at least {min_dof} are needed to measure the scatter)")
        centre, spread = design(params, tokens, spread_floor)
        scored = [s for s in splits if s.z2 and not s.error]
        scored_t = [s for s in tokens_splits if s.z2 and not s.error] if tokens is not None else []
        if not scored:
            # no split in size: one c for both directions, the tokens splits' where there are any
            scored, scored_t = scored_t, []
        c, c_t = error_growths(scored, scored_t, scale)
        if c is None:
            return cls(scale, src, centre, spread, leverage, reach, len(r))

        def spread_of(values):
            return (min(values), max(values)) if len(values) > 1 else None

        loo = [error_growths(scored[:k] + scored[k + 1:], scored_t, scale) for k in range(len(scored))]
        out = cls(scale, src, centre, spread, c, reach, len(r), len(scored), spread_of([v[0] for v in loo]))
        if c_t is not None:
            loo_t = [error_growths(scored, scored_t[:k] + scored_t[k + 1:], scale) for k in range(len(scored_t))]
            out.leverage_tokens, out.leverage_tokens_splits = c_t, len(scored_t)
            out.leverage_tokens_range = spread_of([v[1] if v[1] is not None else v[0] for v in loo_t])
        return out

    @property
    def leverage_source(self) -> str:
        """Where c (and c_t) come from, in words."""
        text = leverage_words(self.leverage_splits, self.leverage_range)
        if len(self.centre) > 1:
            text += "; " + tokens_growth_words(self.leverage_tokens, self.leverage_tokens_splits,
                                               self.leverage_tokens_range)
        return text

    def z2(self, N, D=None) -> np.ndarray:
        """Squared standardised distance of (N, D) from the centre of the fitted design (in
        ln N only when D is None or the law has no tokens)."""
        return design_z2(self.centre, self.spread, N, D)

    def z_parts(self, N, D=None) -> tuple[float, float | None]:
        """(z_N, z_t) at one (N, D): the distances of ln N and ln D/N from the centre of the
        fitted design in its standard deviations (z_t None for a law without tokens)."""
        z2_n, z2_t = design_z2_parts(self.centre, self.spread, N, D)
        return float(np.sqrt(z2_n)), (float(np.sqrt(z2_t)) if len(self.centre) > 1 else None)

    @property
    def growth_formula(self) -> str:
        """How the interval's sd grows, as a formula (no z_t for a law without tokens)."""
        return "sqrt(1 + c z_N^2 + c_t z_t^2)" if len(self.centre) > 1 else "sqrt(1 + c z_N^2)"

    def growth(self, N, D=None) -> np.ndarray:
        """c z_N^2 + c_t z_t^2 at (N, D): how much the variance has grown over the scatter's."""
        z2_n, z2_t = design_z2_parts(self.centre, self.spread, N, D)
        c_t = self.leverage if self.leverage_tokens is None else self.leverage_tokens
        return self.leverage * z2_n + c_t * z2_t

    def half_width(self, N, D=None, level: float = 0.90) -> np.ndarray:
        """Relative half-width of the ``level`` interval of a run's loss at (N, D)."""
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
        return z * self.scale * np.sqrt(1.0 + self.growth(N, D))

    def to_dict(self) -> dict:
        return {"scale": self.scale, "scale_source": self.scale_source, "leverage": self.leverage,
                "leverage_splits": self.leverage_splits, "leverage_range": self.leverage_range and list(self.leverage_range),
                "leverage_tokens": self.leverage_tokens, "leverage_tokens_splits": self.leverage_tokens_splits,
                "leverage_tokens_range": self.leverage_tokens_range and list(self.leverage_tokens_range),
                "leverage_source": self.leverage_source,
                "centre_ln": list(self.centre),
                "spread_ln": list(self.spread), "reach": self.reach, "n_residuals": self.n_residuals}

    @classmethod
    def from_dict(cls, d: dict) -> "ErrorModel":
        """Inverse of :meth:`to_dict` (a saved fit carries its error model)."""
        def pair(v):
            return tuple(float(x) for x in v) if v else None

        return cls(float(d["scale"]), str(d["scale_source"]), tuple(float(x) for x in d["centre_ln"]),
                   tuple(float(x) for x in d["spread_ln"]), float(d["leverage"]), float(d["reach"]),
                   int(d.get("n_residuals", 0)), int(d.get("leverage_splits", 0)), pair(d.get("leverage_range")),
                   None if d.get("leverage_tokens") is None else float(d["leverage_tokens"]),
                   int(d.get("leverage_tokens_splits", 0)), pair(d.get("leverage_tokens_range")))

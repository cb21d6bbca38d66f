"""Backtests: how well would each law have predicted the largest runs of this very table?

OLMo's model ladder and Gadre et al. 2024 fit small models to predict large ones; a law
that fits the small ones well can still miss the large ones by several percent. So every
candidate law is refitted with the largest model size held out (and, where the table
allows, the two largest sizes, and separately the largest compute budgets), and asked to
predict the held-out points. The relative errors are the evidence for choosing a law:
:func:`select_law` picks the one with the lowest held-out error and says why in one line:
the earlier rule, behind ``--sizes auto``; ``--law auto`` itself asks
:mod:`analysis.selection.policy`, whose backtest fits the smaller sizes and predicts the
larger ones at the distance a question asks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..common.errors import InputError, ToolkitError
from ..common.text import format_table, markdown_table, sci, si
from ..data.loading import load_points
from ..data.points import log_key, n_distinct, with_flops
from ..fitting.approaches import isoflop_budgets
from ..fitting.fit import fit_law
from ..laws import LAWS, get_law
from ..laws.base import INPUT_COLUMNS
from ..laws.mix import mix_name
from .size_cuts import SIZE_CUTS, cut_fraction, cut_label, describe_cut, largest_sizes
from .stacking import combined_rows, stack_weights

__all__ = ["SPLITS", "Split", "BacktestRow", "BacktestResult", "backtest", "splits_for", "select_law",
           "LawChoice", "auto_candidates", "law_scores", "tied_laws", "held_out_errors", "STACK_GAIN", "CUT_GAIN",
           "backtests_by_cut"]

#: Split names, in the order they are tried.
SPLITS = ("largest_size", "two_largest_sizes", "largest_compute")
#: Fewest sizes a training set keeps after a size is held out: the Chinchilla form's size
#: term E + A / N^alpha needs three (Hoffmann et al. 2022, eq. 2).
MIN_TRAIN_SIZES = 3
#: Points within this relative distance in compute share a budget (as in Approach 2).
BUDGET_TOLERANCE = 0.15
#: Held-out errors this close (relative) count as a tie, which the simpler law wins.
TIE = 0.10
#: A stacked combination must lower the best single law's score by this fraction. Its
#: weights are chosen on the very splits it is scored on, so noise alone lowers the score:
#: on seeded ladders drawn from one law with 0.4% noise, by 11-41% in 3 of 20 seeds.
STACK_GAIN = 0.25
#: A size cut (:mod:`analysis.selection.size_cuts`) must lower the score of the larger cut chosen so far
#: by this fraction, for the same reason: on seeded ladders of 10 sizes drawn from one law with 0.4%
#: noise, noise alone lowered some cut's score by 5-22% in 6 of 10 seeds (``python docs/studies/size_cut_study.py``).
CUT_GAIN = 0.25


@dataclass
class Split:
    """One way of holding out the largest runs: a boolean mask of the test points."""

    name: str
    description: str
    test: np.ndarray


def _budgets(points: pd.DataFrame) -> np.ndarray:
    """A compute-budget label per point, as Approach 2 groups IsoFLOP profiles (points within
    BUDGET_TOLERANCE share one; a ``budget`` column is used as it is)."""

    return np.asarray(isoflop_budgets(points, tolerance=BUDGET_TOLERANCE))


def splits_for(points: pd.DataFrame, splits: Sequence[str] = SPLITS) -> tuple[list[Split], list[str]]:
    """The splits this table allows, and a note for each one it does not."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise InputError(f"unknown split(s) {', '.join(unknown)}", field="splits", fix="use some of " + ", ".join(SPLITS))
    sizes = log_key(points["params"])
    distinct = np.unique(sizes)
    out, notes = [], []
    for name in splits:
        if name in ("largest_size", "two_largest_sizes"):
            k = 1 if name == "largest_size" else 2
            if len(distinct) - k < MIN_TRAIN_SIZES:
                notes.append(f"{name}: {len(distinct)} model sizes leave fewer than {MIN_TRAIN_SIZES} to fit on")
                continue
            held = distinct[-k:]
            test = np.isin(sizes, held)
            desc = ("largest size held out (" if k == 1 else "two largest sizes held out (") + \
                ", ".join(si(float(points["params"][sizes == h].iloc[0])) for h in held) + ")"
            out.append(Split(name, desc, test))
        else:
            if "flops" not in points.columns:
                notes.append(f"{name}: no compute column")
                continue
            labels = _budgets(points)
            n_b = len(np.unique(labels))
            if n_b >= 5 and n_b <= len(points) / 2:
                top = np.unique(labels)[-2:]  # an IsoFLOP design: hold out the two largest budgets
                test = np.isin(labels, top)
                desc = "two largest compute budgets held out"
            else:
                lc = np.log(points["flops"].to_numpy(float))
                cut = lc.max() - (lc.max() - lc.min()) / 5
                test = lc >= cut
                desc = f"largest fifth of the compute range held out (C >= {sci(float(np.exp(cut)))})"
            train = ~test
            if test.sum() == 0 or n_distinct(points["params"][train]) < MIN_TRAIN_SIZES or train.sum() < 6:
                notes.append(f"{name}: too few points left to fit on")
                continue
            out.append(Split(name, desc, test))
    return out, notes


@dataclass
class BacktestRow:
    """One law refitted on one split's training points and scored on its test points."""

    law: str
    split: str
    description: str
    n_train: int
    n_train_sizes: int
    n_test: int
    mean_rel_error: float | None = None
    max_rel_error: float | None = None
    mean_signed_error: float | None = None
    error: str = ""
    #: the held-out losses and this law's predictions of them (what a stacked combination
    #: of laws is scored on: :mod:`analysis.selection.stacking`); left out of ``to_dict`` and tables
    observed: list | None = field(default=None, repr=False)
    pred: list | None = field(default=None, repr=False)
    #: each held-out point's N over the largest fitted N (distance backtests, :mod:`analysis.selection.policy`)
    distances: list | None = field(default=None, repr=False)
    #: each held-out point's squared standardised distance from this split's fitted design
    #: (:meth:`analysis.selection.policy.ErrorModel.z2`): what the error growth is measured against
    z2: list | None = field(default=None, repr=False)
    #: the part of ``z2`` in ln(D/N) (None: the law has no tokens): the error growth in tokens
    #: per parameter is measured apart from the growth in size
    z2_tokens: list | None = field(default=None, repr=False)

    def public(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("observed", "pred", "distances", "z2", "z2_tokens")}
        if self.distances:
            out["distance_range"] = [min(self.distances), max(self.distances)]
        return out


@dataclass
class BacktestResult:
    rows: list[BacktestRow]
    laws: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    #: each refit saw only the largest ``keep`` of its training part's sizes (:mod:`analysis.selection.size_cuts`)
    keep: float = 1.0
    #: "holdout": the largest runs held out (:func:`backtest`); "distance": fitted to the smaller
    #: sizes and scored on every larger one (:func:`analysis.selection.policy.distance_backtest`)
    kind: str = "holdout"

    def rows_of(self, name: str, ok: bool = False) -> list[BacktestRow]:
        """The rows of law ``name`` (with ``ok``: only the splits it could be refitted on)."""
        grouped: dict[str, list[BacktestRow]] = {}
        for r in self.rows:
            grouped.setdefault(r.law, []).append(r)
        return [r for r in grouped.get(name, []) if not (ok and r.error)]

    def farthest(self, name: str) -> float:
        """The farthest distance (held-out N over the largest fitted N) law ``name`` was scored at."""
        return max((max(r.distances) for r in self.rows_of(name, ok=True) if r.distances), default=1.0)

    def summary(self) -> dict[str, dict]:
        """Per law: mean and max held-out relative error over every split it could be refitted on."""
        out = {}
        for law in self.laws:
            rows = self.rows_of(law, ok=True)
            failed = [r.split for r in self.rows_of(law) if r.error]
            out[law] = {
                "splits": len(rows),
                "failed": failed,
                "mean_rel_error": float(np.mean([r.mean_rel_error for r in rows])) if rows else None,
                "max_rel_error": float(np.max([r.max_rel_error for r in rows])) if rows else None,
            }
        return out

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.public() for r in self.rows])

    def to_dict(self) -> dict:
        # "law" in --json always holds a law object (docs/json.md); a row names its law
        rows = [{("law_name" if k == "law" else k): v for k, v in r.public().items()} for r in self.rows]
        return {"rows": rows, "summary": self.summary(), "notes": list(self.notes),
                "sizes": cut_label(self.keep), "kind": self.kind}

    def _display(self) -> list[dict]:
        return [{"law": r.law, "held out": r.description, "fit on": f"{r.n_train} pts, {r.n_train_sizes} sizes",
                 "test pts": r.n_test, "mean err": _pct(r.mean_rel_error), "max err": _pct(r.max_rel_error),
                 "bias": _pct(r.mean_signed_error, signed=True), "note": r.error or ""} for r in self.rows]

    def table(self) -> str:
        rows = self._display()
        cols = [c for c in rows[0] if c != "note" or any(r["note"] for r in rows)] if rows else []
        text = format_table(rows, cols, formats={c: str for c in cols}) if rows else "(no split possible)"
        fitted = "" if self.keep >= 1 else f", fitted to the {cut_label(self.keep)} of its training sizes"
        title = ("each law fitted to the smaller sizes and scored on every larger one (relative error)"
                 if self.kind == "distance" else
                 f"each law refitted without the largest runs{fitted}, scored on them (relative error)")
        lines = [f"[[Backtest]] {title}",
                 *("    " + ln for ln in text.splitlines())]
        lines += [f"    note: {n}" for n in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        rows = self._display()
        return markdown_table(rows, formats={c: str for c in rows[0]}) if rows else "(no split possible)"


def _pct(v, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:+.2f}%" if signed else f"{100 * v:.2f}%"


def auto_candidates(points: pd.DataFrame | None = None) -> tuple[str, ...]:
    """The laws ``--law auto`` considers: the registered joint laws marked ``candidate``
    whose inputs the table has (a law of the unique tokens U only with ``unique_tokens``;
    without a table, only laws of N and D)."""
    cols = set(points.columns) if points is not None else {INPUT_COLUMNS["N"], INPUT_COLUMNS["D"]}
    return tuple(n for n, law in LAWS.items() if law.candidate and law.is_joint and law.form is not None
                 and all(INPUT_COLUMNS[k] in cols for k in law.inputs if k != "N"))


def _prepare(points) -> pd.DataFrame:
    df = points if isinstance(points, pd.DataFrame) and "params" in points.columns else load_points(points)
    df = with_flops(df)
    return df.reset_index(drop=True)


def backtest(points, laws: Sequence[str] | None = None, splits: Sequence[str] = SPLITS, keep: float = 1.0,
             reuse: BacktestResult | None = None, **fit_options) -> BacktestResult:
    """Refit each law without the largest runs and score its predictions of them.

    ``points``: anything :func:`analysis.data.loading.load_points` takes. ``laws``: law names
    (default :func:`auto_candidates`). ``splits``: some of :data:`SPLITS`; a split the
    table cannot support (too few sizes left, no compute column) is skipped with a note.
    Each refit is :func:`analysis.fitting.fit.fit_law` with ``fit_options`` (no bootstrap); a law
    that cannot be refitted on a split gets a row with ``error`` set instead of numbers.
    ``keep`` < 1 refits each law on the largest ``keep`` of each training part's sizes only
    (:func:`analysis.selection.size_cuts.largest_sizes`), as a fit with that cut would be made; the rows
    of a split the cut leaves whole are taken from ``reuse`` (the same table's backtest of
    every size, same laws) instead of being refitted.
    """

    df = _prepare(points)
    laws = tuple(laws) if laws is not None else auto_candidates(df)
    for law in laws:
        get_law(law)
    fit_options = {"progress": False, **fit_options}
    fit_options.pop("bootstrap", None)
    chosen, notes = splits_for(df, splits)
    rows = []
    for sp in chosen:
        train, test = largest_sizes(df[~sp.test], keep), df[sp.test]
        if reuse is not None and len(train) == int((~sp.test).sum()):
            rows += [r for r in reuse.rows if r.split == sp.name and r.law in laws]
            continue
        for law in laws:
            row = BacktestRow(law, sp.name, sp.description, len(train), n_distinct(train["params"]), len(test))
            rows.append(score_refit(row, train, test, law, fit_options))
    return BacktestResult(rows, laws, notes, keep=keep)


def score_refit(row: BacktestRow, train: pd.DataFrame, test: pd.DataFrame, law: str, fit_options: dict) -> BacktestRow:
    """Fit ``law`` to ``train`` and fill ``row`` with its relative errors on ``test`` (or
    with the reason it could not be refitted)."""

    try:
        fit = fit_law(train, law, **fit_options)
        pred = np.asarray(fit.predict_table(test), dtype=float)
        rel = pred / test["loss"].to_numpy(float) - 1.0
        if not np.all(np.isfinite(rel)):
            raise ToolkitError("non-finite predictions of the held-out points")
        row.mean_rel_error = float(np.mean(np.abs(rel)))
        row.max_rel_error = float(np.max(np.abs(rel)))
        row.mean_signed_error = float(np.mean(rel))
        row.observed, row.pred = test["loss"].to_list(), pred.tolist()
    except ToolkitError as e:
        row.error = str(e).split(" (fix:")[0]
    return row


def backtests_by_cut(points, laws: Sequence[str] | None = None, splits: Sequence[str] = SPLITS,
                     cuts: Sequence[float] = SIZE_CUTS, **fit_options) -> dict[float, BacktestResult]:
    """The backtest at each size cut of ``cuts`` that changes what some split fits on (a cut
    that keeps the same sizes as a larger one on every split is left out); every size always."""
    df = _prepare(points)
    chosen, _ = splits_for(df, splits)
    out, seen = {}, set()
    for keep in sorted({1.0, *cuts}, reverse=True):
        shape = tuple(n_distinct(largest_sizes(df[~sp.test], keep)["params"]) for sp in chosen)
        if shape in seen:
            continue
        seen.add(shape)
        out[keep] = backtest(df, laws=laws, splits=splits, keep=keep, reuse=out.get(1.0), **fit_options)
    return out


@dataclass
class LawChoice:
    """The law ``--law auto`` chose, the one-line reason, and the backtest behind it."""

    law: str
    reason: str
    backtest: BacktestResult | None = None
    fallback: bool = False
    #: a stacked combination's weights (``law`` is then its ``mix(...)`` name), else None
    weights: dict | None = None
    #: the chosen law's (or combination's) score: mean over splits of the largest held-out error
    score: float | None = None
    #: the fraction of the largest sizes it is fitted to (:mod:`analysis.selection.size_cuts`), and the
    #: best score at each cut the backtest tried
    keep: float = 1.0
    cut_scores: dict = field(default_factory=dict)
    #: (distance policy, :mod:`analysis.selection.policy`) the laws within the tie margin, the farthest
    #: distance its backtest reached, and the error model that sizes the intervals
    #: (:class:`analysis.selection.policy.ErrorModel`, set once the law is fitted)
    tied_names: list = field(default_factory=list)
    reach: float = 1.0
    error_model: object = None
    #: the policy's knobs with their reasons (:meth:`analysis.selection.policy.LawPolicy.describe`)
    policy: dict | None = None

    @property
    def label(self) -> str:
        """The law with its size cut: ``kaplan_nd[1/2]`` is kaplan_nd fitted to the largest half."""
        return self.law if self.keep >= 1.0 else f"{self.law}[{cut_fraction(self.keep)}]"

    def spread_laws(self) -> list[str]:
        """The laws whose own predictions belong in this choice's intervals: a combination's
        components, else the laws the backtest could not tell from the choice (none for the
        fallback rule, which had no backtest to go by)."""
        if self.weights:
            return list(self.weights)
        if self.policy is not None:
            return list(self.tied_names)
        return tied_laws(self.backtest, self.law) if self.backtest is not None and not self.fallback else []

    def held_out_errors(self) -> list[dict]:
        """The chosen law's (or combination's) held-out errors per split (:func:`held_out_errors`)."""
        return held_out_errors(self.backtest, self.law, self.weights) if self.backtest is not None else []

    def to_dict(self) -> dict:
        # the backtest itself is not repeated here: CheckedFit.to_dict puts it beside the choice
        if self.policy is not None:
            return {"law_name": self.law, "reason": self.reason, "fallback": self.fallback, "score": self.score,
                    "tied_laws": list(self.tied_names), "backtest_reach": self.reach,
                    "error_model": self.error_model.to_dict() if self.error_model is not None else None,
                    "policy": self.policy}
        return {"law_name": self.law, "reason": self.reason, "fallback": self.fallback, "weights": self.weights,
                "score": self.score, "sizes": cut_label(self.keep),
                "cut_scores": {cut_label(k): v for k, v in self.cut_scores.items()}}


_SHORT = {"largest_size": "largest size", "two_largest_sizes": "two largest sizes",
          "largest_compute": "largest compute"}

#: The documented rule when nothing can be backtested: the over-training law, whose
#: size term needs two sizes (Gadre et al. 2024), not Chinchilla's, which needs three.
FALLBACK = "gadre2024"


def law_scores(result: BacktestResult) -> dict[str, float]:
    """The selection score of each law that every split could refit: the mean over splits of
    its largest held-out relative error (the largest targets are what an extrapolation is for)."""
    scores = {}
    for law in result.laws:
        rows = result.rows_of(law)
        if rows and all(r.error == "" for r in rows):
            scores[law] = float(np.mean([r.max_rel_error for r in rows]))
    return scores


def held_out_errors(result: BacktestResult, law: str, weights: dict | None = None) -> list[dict]:
    """Per split the law could be refitted on: its held-out ``mean_rel_error``,
    ``max_rel_error`` and ``mean_signed_error``; with ``weights``, those of the stacked
    combination of the laws they name (:func:`analysis.selection.stacking.combined_rows`)."""
    if weights:

        return combined_rows(result, weights) or []
    return [{"split": r.split, "mean_rel_error": r.mean_rel_error, "max_rel_error": r.max_rel_error,
             "mean_signed_error": r.mean_signed_error} for r in result.rows_of(law, ok=True)]


def tied_laws(result: BacktestResult, chosen: str) -> list[str]:
    """The laws other than ``chosen`` whose score is within :data:`TIE` of the best: laws the
    backtest cannot tell apart from the choice, whose spread belongs in a prediction interval."""
    scores = law_scores(result)
    if not scores:
        return []
    best = min(scores.values())
    return [n for n, v in scores.items() if n != chosen and v <= best * (1 + TIE) + 1e-12]


def select_law(points, laws: Sequence[str] | None = None, splits: Sequence[str] = SPLITS,
               result: BacktestResult | None = None, stack: bool = True, cuts: Sequence[float] = SIZE_CUTS,
               results: dict | None = None, **fit_options) -> LawChoice:
    """Pick the law with the lowest held-out error, and the sizes to fit it to.

    The score of a law is the mean over splits of its largest held-out relative error (the
    largest targets are the ones an extrapolation is for); errors within :data:`TIE` of
    the best count as a tie, won by the law with fewer parameters. A law that fails on
    any split it was tried on is not chosen. With no split possible (fewer than
    ``MIN_TRAIN_SIZES + 1`` sizes and no compute split), :data:`FALLBACK` is used, and
    the reason says so.

    With ``stack`` (the default), the stacked combination of the laws with the lowest score
    (:func:`analysis.selection.stacking.stack_weights`) is chosen instead when its score is lower than
    the best single law's by more than :data:`STACK_GAIN`; ``law`` is then its ``mix(...)`` name.

    ``cuts``: the fractions of the largest sizes to try fitting on (:mod:`analysis.selection.size_cuts`);
    the choice is made at each (:func:`backtests_by_cut`), and a cut is taken only when its
    score is lower by more than :data:`CUT_GAIN` than that of the larger cut chosen so far
    (more data wins a tie).
    ``result`` (one backtest) or ``results`` (by cut) skip the backtests already made.
    Measured with the choice made on inner backtests only, this lowers Chinchilla's largest
    held-out error on the over-trained Porian et al. 2024 tables 2.65-fold (``docs/analysis.md``).
    """
    df = _prepare(points)
    if results is None:
        results = ({result.keep: result} if result is not None else
                   backtests_by_cut(df, laws=laws, splits=splits, cuts=cuts, **fit_options))
    choices = {keep: _choose(df, res, laws, stack) for keep, res in sorted(results.items(), reverse=True)}
    full = choices[max(choices)]
    pick = full
    for keep, c in choices.items():  # larger cuts first: a smaller one must beat them clearly
        if c.score is not None and (pick.score is None or c.score < pick.score * (1 - CUT_GAIN) - 1e-12):
            pick = c
    scores = {k: c.score for k, c in choices.items() if c.score is not None}
    pick.cut_scores = scores
    if pick.keep < 1.0:
        cut = describe_cut(df, pick.keep)
        head, _, rest = pick.reason.partition(", ")
        pick.reason = (f"{head} fitted to {cut}, {rest}; fitted to every size the best was "
                       f"{full.law} {100 * full.score:.2g}%")
    return pick


def _choose(df: pd.DataFrame, res: BacktestResult, laws, stack: bool) -> LawChoice:
    """The choice among the laws (and their combinations) on one backtest."""
    scores = law_scores(res)
    if not scores:
        why = "; ".join(res.notes) if res.notes else "every law failed on every split"
        law = FALLBACK if FALLBACK in (laws or auto_candidates(df)) else (laws or auto_candidates(df))[0]
        return LawChoice(law, f"auto: {law} (nothing to backtest: {why}; the rule for too few sizes is {law})",
                         res, fallback=True, keep=res.keep)
    best = min(scores.values())
    tied = [law for law, v in scores.items() if v <= best * (1 + TIE) + 1e-12]
    pick = min(tied, key=lambda n: (len(get_law(n).params), scores[n]))
    split_names = [_SHORT[s] for s in SPLITS if any(r.split == s for r in res.rows_of(pick))]
    failed = [n for n in res.laws if n not in scores]
    tail = f" with the {', '.join(split_names)} held out" + (f"; not refittable: {', '.join(failed)}" if failed else "")
    ranked = sorted(scores.items(), key=lambda kv: kv[1])
    if stack:

        found = stack_weights(res)
        # A combination only when it beats every single law clearly: its weights are chosen
        # on the same splits, so a small gain is not evidence.
        if found is not None and len(found[0]) > 1 and found[1] < best * (1 - STACK_GAIN):
            weights, score = found
            name = mix_name(weights)
            singles = ", ".join(f"{n} {100 * v:.2g}%" for n, v in ranked)
            reason = (f"auto: {name}, a stacked combination, held-out max error {100 * score:.2g}% vs "
                      f"{singles}{tail} (weights chosen on these splits)")
            return LawChoice(name, reason, res, weights=weights, score=score, keep=res.keep)
    others = ", ".join(f"{n} {100 * v:.2g}%" for n, v in ranked if n != pick)
    reason = (f"auto: {pick}, held-out max error {100 * scores[pick]:.2g}%"
              + (f" vs {others}" if others else "") + tail)
    if pick != min(scores, key=scores.get):
        reason += f"; within {100 * TIE:g}% of the best, and fewer parameters"
    return LawChoice(pick, reason, res, score=scores[pick], keep=res.keep)

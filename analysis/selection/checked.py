"""One checked fit: choose the law (``auto``: by backtest), fit it, and run every self-check.

This is what ``scaling fit``, ``scaling extrapolate`` and ``scaling report`` call, so the
three commands choose laws the same way and print the same checks, failures first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

import numpy as np

from ..common.errors import InputError, RecordError, ToolkitError
from ..common.records import atomic_write_json
from ..data.points import n_distinct, set_aside_short, short_threshold
from ..fitting.fit import check_points, fit_law
from ..fitting.result import LawFit, _read_json
from ..laws import get_law
from .backtest import (TIE, BacktestResult, LawChoice, auto_candidates, backtest, backtests_by_cut, held_out_errors,
                       select_law)
from .checks import Check, self_checks
from .policy import POLICY, ErrorModel, beside_error_model, determinable, distance_backtest
from .size_cuts import AUTO_SIZES, describe_cut, largest_sizes

__all__ = ["CheckedFit", "fit_checked", "set_aside_short_runs", "checks_block", "checks_json", "AUTO", "prediction_distance",
           "save_checked", "saved_fit_dict", "load_checked"]

AUTO = "auto"


@dataclass
class CheckedFit:
    """A fit with the choice that led to it, its backtest and its self-checks."""

    fit: object
    choice: LawChoice | None = None
    backtest: BacktestResult | None = None
    checks: list[Check] = field(default_factory=list)
    #: Laws the backtest could not tell apart from the choice (within TIE), fitted to the
    #: same points: their predictions widen :meth:`predict_interval`.
    tied: dict = field(default_factory=dict)
    #: the fraction of the largest sizes fitted (:mod:`analysis.selection.size_cuts`) and what that left out
    keep: float = 1.0
    sizes_note: str = ""
    #: runs shorter than the policy's tokens per parameter, set aside before fitting
    #: (:meth:`analysis.selection.policy.LawPolicy` ``min_tokens_per_param``), and what was said of them
    short_runs: dict = field(default_factory=dict)
    #: a saved fit's error model and how its law was chosen (:func:`load_checked`): the
    #: choice itself, with its backtest, is not saved
    saved_error_model: object = None
    saved_reason: str = ""

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def header_lines(self) -> list[str]:
        """What goes above any number: the auto choice, then failed and warned checks."""
        lines = [self.choice.reason] if self.choice is not None else []
        if self.saved_reason:
            lines.append(f"saved fit: {self.saved_reason}")
        if self.short_runs.get("note"):
            lines.append(self.short_runs["note"])
        if self.sizes_note:
            lines.append(self.sizes_note)
        if self.tied:
            lines.append(self.widening_line())
        return lines + checks_block(self.checks, problems_only=True)

    def interval_note(self) -> str:
        """How a prediction interval from :meth:`predict_interval` with ``backtest_error`` is built."""
        boot = self.fit.samples is not None
        tied = ["the laws the backtest cannot tell apart (" + ", ".join(self.tied) + ")"] if self.tied else []
        em = self.error_model
        if em is not None:
            model = (f"a new run's scatter about the law ({100 * em.scale:.2g}%, {em.scale_source}) times "
                     f"{em.growth_formula}, " + ("z_N and z_t the distances from the centre of the fitted sizes and "
                                                  "tokens per parameter in their standard deviations"
                                                  if len(em.centre) > 1 else
                                                  "z_N the distance from the centre of the fitted sizes in standard "
                                                  "deviations") + f", c = {em.leverage:.3g} ({em.leverage_source})")
            more = ["the bootstrap"] * boot + tied
            if not more:
                return f"covers {model}"
            verb = "reaches" if more == ["the bootstrap"] else "reach"  # "the laws ... (chinchilla)" is plural
            return (f"covers {model}; extended where {' or '.join(more)} {verb} beyond it (a second estimate of "
                    "the same held-out error, not added to it)")
        parts = ["bootstrap" if boot else "point prediction"] + tied
        if self.backtest_error:
            parts.append(f"the held-out error of the backtest ({100 * self.backtest_error:.2g}%)")
        return ("covers " + ", ".join(parts) + "; on Porian et al. 2024's tables such 90% intervals hold 96% of "
                "held-out points, against 28% without the held-out error (docs/analysis.md)")

    def widening_line(self) -> str:
        names = ", ".join(self.tied)
        whole = [n for n in self.tied if n.endswith(ALL_SIZES)]
        if whole:
            rest = [n for n in self.tied if n not in whole]
            return ("intervals: prediction intervals widened to cover " + ", ".join(rest + whole)
                    + ": the size cut was judged one extrapolation step out, and further out the fit "
                      "to every size (more sizes, less variance) may do better")
        if self.choice is not None and self.choice.weights:
            return (f"intervals: prediction intervals widened to cover each law of the combination on its own "
                    f"({names}): the backtest weighs them, it does not rule either out")
        if self.error_model is not None:
            margin = POLICY.tie.value
            same = (f"the same backtest error as {self.fit.law}'s" if margin == 0 else
                    f"a backtest error within a factor {1 + margin:g} of {self.fit.law}'s")
            reach = "they reach" if len(self.tied) > 1 else "it reaches"
            return (f"intervals: prediction intervals extended to {names} where {reach} beyond the error model's "
                    f"({same}: these points cannot tell the laws apart)")
        return (f"intervals: prediction intervals widened to cover {names} (backtest error within "
                f"{100 * TIE:g}% of {self.fit.law}'s: these points cannot tell the laws apart)")

    @property
    def backtest_error(self) -> float | None:
        """The fitted law's largest held-out relative error in this table's backtest (None
        without a backtest row for it): its error one step of extrapolation out."""
        if self.backtest is None:
            return None
        weights = self.choice.weights if self.choice is not None else None
        rows = held_out_errors(self.backtest, self.fit.law, weights)
        return max((r["max_rel_error"] for r in rows), default=None)

    @property
    def error_model(self):
        """The choice's model of a prediction's error (:class:`analysis.selection.policy.ErrorModel`), or None."""
        if self.choice is None:
            return self.saved_error_model
        return getattr(self.choice, "error_model", None)

    def distance(self, N) -> np.ndarray:
        """N over the largest model size the law was fitted to (1 or less: inside the fitted sizes)."""
        top = self.fit.data_range.get("N", (None, None))[1]
        return np.asarray(N, dtype=float) / float(top) if top else np.ones_like(np.asarray(N, dtype=float))

    def tokens_distance(self, N, D) -> np.ndarray:
        """D/N over the most tokens per parameter fitted near N: at the fitted sizes within a
        factor e of the fitted size nearest N (1 or less: inside what was fitted there; 1
        without a record of it)."""
        N, D = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(D, dtype=float))
        by_size = self.fit.meta.get("tokens_per_param_by_size") or {}
        if not by_size:
            return np.ones_like(N)
        sizes = np.array([float(k) for k in by_size])
        return (D / N) / most_tokens_per_param_near(sizes, np.array([v[1] for v in by_size.values()]), N)

    def prediction_warnings(self, N: float, D: float) -> list[str]:
        """What a prediction at (N, D) should be read with: the fit's range warnings, and a
        question shorter (in tokens per parameter) than every run the law was fitted to, when
        runs that short were set aside."""
        out = list(self.fit.extrapolation_warnings(N=N, D=D))
        used, aside = self.short_runs.get("min_tokens_per_param"), self.short_runs.get("set_aside")
        if aside and used and D / N < used * (1 - 1e-9):
            where = _offset_words(self.short_runs.get("median_offset"), "this table's", "the law")
            out.append(f"D/N={D / N:.3g} is shorter than the {used:.3g} tokens per parameter of every run the law was "
                       f"fitted to: runs that short were set aside{where}; --min-tpp 0 fits them")
        return out

    def distance_half_width(self, N, level: float | None = None, D=None) -> np.ndarray:
        """Relative half-width the error model puts around a prediction at size N (and, with D,
        at its tokens per parameter): 0 without a model."""
        em = self.error_model
        if em is None:
            return np.zeros_like(np.asarray(N, dtype=float))
        return em.half_width(N, D, self.fit.ci_level if level is None else level)

    def predict_interval(self, N=None, D=None, C=None, level: float | None = None, backtest_error: bool = False):
        """(low, high) of a prediction: the chosen fit's bootstrap interval (its point prediction
        without a bootstrap), widened to cover the predictions of every tied law; None when
        there is neither a bootstrap nor a tied law.

        ``backtest_error``: also the held-out error expected at this distance: with ``--law
        auto``, the error model's interval at (N, D) (:class:`analysis.selection.policy.ErrorModel`),
        which the bootstrap and tied laws extend where they reach beyond it
        (:func:`analysis.selection.policy.beside_error_model`); otherwise :attr:`backtest_error`,
        scaled by z_level / z_0.90, widening each side (the interval ``python
        docs/studies/calibration.py`` measures)."""
        base = self.fit.predict_interval(N=N, D=D, C=C, level=level)
        lv = self.fit.ci_level if level is None else level
        modelled = backtest_error and self.error_model is not None
        if modelled:
            n_at = N if N is not None else self.fit.data_range.get("N", (1, 1))[1]
            w = self.distance_half_width(n_at, lv, D=D if (D is not None and N is not None) else None)
        else:
            w = self.backtest_error if backtest_error else None
            if w:
                from scipy.stats import norm

                w = w * float(norm.ppf(0.5 + lv / 2) / norm.ppf(0.95))
        if base is None and not self.tied and not np.any(w):
            return None
        pred = np.asarray(self.fit.predict(N=N, D=D, C=C), dtype=float)
        lo, hi = (pred, pred) if base is None else (np.asarray(base[0], float), np.asarray(base[1], float))
        others = [np.asarray(f.predict(N=N, D=D, C=C), dtype=float) for f in self.tied.values()]
        lo, hi = np.minimum.reduce([lo, pred, *others]), np.maximum.reduce([hi, pred, *others])
        if np.any(w):
            if modelled:
                lo, hi = beside_error_model(pred, w, lo, hi)
            else:  # the earlier rule's held-out error widens the laws' envelope, as it was calibrated
                lo, hi = lo * (1 - w), hi * (1 + w)
        return lo, hi

    def to_dict(self) -> dict:
        out = {"choice": self.choice.to_dict() if self.choice else None,
               "backtest": self.backtest.to_dict() if self.backtest else None,
               "checks": checks_json(self.checks)}
        if self.short_runs:
            out["short_runs"] = dict(self.short_runs)
        if self.keep < 1.0:
            out["sizes"] = {"keep": self.keep, "note": self.sizes_note}
        if self.tied:
            out["tied_laws"] = {"laws": list(self.tied), "note": self.widening_line()}
        return out


#: The key of a saved fit (``scaling fit -o``) that holds what its intervals need beyond the
#: law's own bootstrap: the tied laws' fits and the error model (docs/json.md).
SAVED_INTERVALS = "intervals_from"


def save_checked(checked: CheckedFit, path) -> None:
    """Save ``checked.fit`` as :meth:`LawFit.save` does, plus what its intervals need: the
    laws its choice could not tell apart (each a saved LawFit) and its error model, so that
    ``scaling extrapolate FIT.json`` gives the intervals ``scaling extrapolate TABLE`` gives."""

    atomic_write_json(path, saved_fit_dict(checked))


def saved_fit_dict(checked: CheckedFit) -> dict:
    """The saved-fit record of :func:`save_checked` as a dict."""
    fit = checked.fit
    d = {"kind": fit.KIND, **fit.to_dict()}
    extra = {}
    if checked.tied:
        extra["tied_laws"] = {name: f.to_dict() for name, f in checked.tied.items()}
    if checked.error_model is not None:
        extra["error_model"] = checked.error_model.to_dict()
    reason = checked.choice.reason if checked.choice is not None else checked.saved_reason
    if reason:
        extra["reason"] = reason
    if extra:
        d[SAVED_INTERVALS] = extra
    return d


def load_checked(path) -> CheckedFit:
    """A fit saved by :func:`save_checked` (or :meth:`LawFit.save`), with its tied laws and
    error model when the file has them; no checks (they belong to the data it was fitted to)."""
    record = _read_json(path)
    fit = LawFit.from_record(record, path)
    extra = record.get(SAVED_INTERVALS) or {}
    try:
        tied = {str(k): LawFit.from_dict({kk: vv for kk, vv in v.items() if kk != "kind"})
                for k, v in (extra.get("tied_laws") or {}).items()}
        em = ErrorModel.from_dict(extra["error_model"]) if extra.get("error_model") else None
        reason = str(extra.get("reason", ""))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RecordError(f"its {SAVED_INTERVALS!r} section cannot be read ({e})", field=str(path),
                          fix="save the fit again with `scaling fit TABLE -o FIT.json`") from None
    return CheckedFit(fit, tied=tied, saved_error_model=em, saved_reason=reason)


#: The suffix naming the chosen law fitted to every size, beside a choice fitted to the largest.
ALL_SIZES = " [all sizes]"


def all_sizes_name(law: str) -> str:
    return law + ALL_SIZES


def prediction_distance(fit, n: float, d: float, checked: "CheckedFit | None" = None) -> dict:
    """How far a prediction at (n, d) extrapolates: N over the largest fitted N, its tokens per
    parameter against the range fitted at the fitted size nearest N, and, with a checked fit
    that has a distance model, the tokens-per-parameter distance the interval uses, whether any
    backtest split reached that far, and the half-width it adds (the same one
    :meth:`CheckedFit.predict_interval` applies at (n, d))."""
    top = float(fit.data_range.get("N", (n, n))[1])
    out = {"params_ratio": n / top, "tokens_per_param": d / n}
    near = (getattr(fit, "meta", None) or {}).get("tokens_per_param_by_size") or {}
    if near:
        sizes = np.array([float(k) for k in near])
        k = list(near)[int(np.argmin(np.abs(np.log(sizes / n))))]
        out["fitted_tokens_per_param_near_N"] = {"params": float(k), "range": list(near[k])}
    em = checked.error_model if checked is not None else None
    if em is not None:
        out["tokens_distance"] = float(checked.tokens_distance(n, d))
        out["z"] = float(np.sqrt(em.z2(n, d)))
        out["z_size"], out["z_tokens"] = em.z_parts(n, d)
        out["backtest_reach"] = em.reach
        out["beyond_every_split"] = bool(n / top > em.reach)
        out["half_width"] = float(checked.distance_half_width(n, D=d))
    return out


def most_tokens_per_param_near(sizes: np.ndarray, most: np.ndarray, N) -> np.ndarray:
    """Per N: the most tokens per parameter fitted at the sizes within a factor e of the
    fitted size nearest N (one e-fold: a size fitted at one budget borrows its neighbours')."""
    N = np.asarray(N, dtype=float)
    ln_s = np.log(sizes)
    nearest = ln_s[np.argmin(np.abs(np.log(N)[..., None] - ln_s), axis=-1)]
    window = np.abs(ln_s - nearest[..., None]) <= 1.0 + 1e-9
    return np.max(np.where(window, most, 0.0), axis=-1)


def checks_block(checks: Sequence[Check], problems_only: bool = False) -> list[str]:
    """The checks as report lines; with ``problems_only`` the failed and warned ones, then a
    count of those that passed."""
    if not checks:
        return []
    shown = [c for c in checks if c.status != "ok"] if problems_only else list(checks)
    passed = sum(c.status == "ok" for c in checks)
    tail = [f"    {passed} of {len(checks)} checks passed (--json lists them all)"] if problems_only else []
    return ["[[Checks]]"] + [f"    {c.line()}" for c in shown] + tail


def checks_json(checks: Sequence[Check]) -> list[dict]:
    return [{"name": c.name, "status": c.status, "detail": c.detail} for c in checks]


def fit_checked(points: pd.DataFrame, law: str = AUTO, candidates: Sequence[str] | None = None,
                run_backtest: bool = False, allow_repeats: bool = False, sizes=None, min_tpp: float | None = None,
                **fit_options) -> CheckedFit:
    """Fit ``law`` (or, with ``auto``, the law :data:`analysis.selection.policy.POLICY` chooses by its
    backtest at distance) to ``points`` and run :func:`analysis.selection.checks.self_checks` on the result.

    With ``auto``, the other laws whose backtest error is within the policy's tie margin
    of the choice are fitted too (``.tied``), and :meth:`CheckedFit.predict_interval` covers
    their predictions and the held-out error expected at the distance asked.
    ``run_backtest`` keeps the backtest table (``auto`` always computes one).
    ``sizes``: every size by default; ``auto`` (the earlier rule: the old three-split backtest
    chooses whether to fit the largest sizes only, :mod:`analysis.selection.size_cuts`, and may stack
    laws), or the fraction of the largest sizes to fit. ``fit_options`` go to
    :func:`analysis.fitting.fit.fit_law` (bootstrap, seed, n_jobs, level, resample, progress).
    ``min_tpp``: runs under this many tokens per parameter are set aside before anything is
    fitted (down to the largest size's longest run when that is shorter); None takes the policy's value
    (``POLICY.min_tokens_per_param``), 0 fits every run. Laws without tokens ignore it.
    """
    whole = points
    # the table as given is refused or not before any run is set aside (its values, its design, its repeats)
    first = min(candidates or auto_candidates(points), key=lambda n: len(get_law(n).params)) \
        if str(law).lower() == AUTO else law
    check_points(whole, first, allow_repeats)
    points, short = set_aside_short_runs(points, law, candidates, min_tpp)


    auto = str(law).lower() == AUTO  # the sentinel, not a law
    quiet = {k: v for k, v in fit_options.items() if k in ("n_starts", "delta")}
    choice, bt = None, None
    if auto and sizes in (None, 1.0, 1):
        # the distance policy (analysis.selection.policy): a law with a floor, chosen by backtests at distance
        pool = candidates or auto_candidates(points)
        # the table itself first (values, repeats, a design the simplest candidate needs)
        check_points(points, min(pool, key=lambda n: len(get_law(n).params)), allow_repeats)
        choice = POLICY.choose(points, laws=candidates, allow_repeats=allow_repeats, **quiet)
        check_points(points, choice.law, allow_repeats)
        law, bt, keep = choice.law, choice.backtest, 1.0
    else:
        check_points(points, law if not auto else (candidates or auto_candidates(points))[0], allow_repeats)
        sizes = (AUTO_SIZES if auto else 1.0) if sizes is None else sizes
        given = None if sizes == AUTO_SIZES else float(sizes)
        if auto or sizes == AUTO_SIZES:
            laws = candidates if auto else (law,)
            results = (backtests_by_cut(points, laws=laws, allow_repeats=allow_repeats, **quiet)
                       if sizes == AUTO_SIZES
                       else {given: backtest(points, laws=laws, keep=given, allow_repeats=allow_repeats, **quiet)})
            choice = select_law(points, laws=laws, results=results, stack=auto)
            law, bt, keep = choice.law, choice.backtest, choice.keep
        else:
            keep = given
            if run_backtest and keep >= 1.0:
                names = tuple(dict.fromkeys([*(candidates or POLICY.candidates(points)), law]))
                bt = distance_backtest(points, names, allow_repeats=allow_repeats, **quiet)
            elif run_backtest:
                laws = tuple(candidates) if candidates else None
                bt = backtest(points, laws=laws, keep=keep, allow_repeats=allow_repeats, **quiet)
                if law not in bt.laws:
                    bt = backtest(points, laws=tuple(bt.laws) + (law,), keep=keep, allow_repeats=allow_repeats,
                                  **quiet)
    fitted = largest_sizes(points, keep)
    note = ""
    if len(fitted) < len(points):
        left = n_distinct(points["params"]) - n_distinct(fitted["params"])
        why = ("the backtest predicts the largest runs better without them" if sizes == AUTO_SIZES
               else "--sizes asked for it")
        note = (f"sizes: fitted to {describe_cut(points, keep)}, {len(fitted)} of {len(points)} points; the "
                f"{left} smaller sizes are left out ({why}; --sizes all fits every size)")
    fit = fit_law(fitted, law, allow_repeats=allow_repeats, **fit_options)
    short = short.measured(fit)
    if choice is not None and choice.policy is not None:
        choice.error_model = POLICY.error_model(fit, fitted, choice.reach, choice.backtest,
                                                 allow_repeats=allow_repeats, **quiet)
    # Laws the backtest cannot separate from the choice: their spread is part of the
    # prediction's uncertainty, which one law's bootstrap does not see.
    tied = {other: fit_law(fitted, other, allow_repeats=allow_repeats, **quiet, progress=False, uncertainty=False)
            for other in (choice.spread_laws() if choice is not None else [])}
    if keep < 1.0 and sizes == AUTO_SIZES:
        # the cut is judged one step out; further out, the fit to every size may be the better
        # one (fewer sizes, more variance), so the intervals cover it too
        tied[all_sizes_name(law)] = fit_law(points, law, allow_repeats=allow_repeats, **quiet, progress=False)
    return CheckedFit(fit, choice, bt if (run_backtest or choice is not None) else None,
                      self_checks(fit, whole, fitted=fitted), tied, keep=keep, sizes_note=note, short_runs=short)


@dataclass
class ShortRuns:
    """What :func:`set_aside_short_runs` set aside (``record``: ``CheckedFit.short_runs``),
    with the rows it split, so that :meth:`measured` places them against the fitted law
    without filtering the table or resolving the threshold again."""

    record: dict
    points: pd.DataFrame | None = None
    kept: pd.DataFrame | None = None
    aside: pd.DataFrame | None = None
    #: the threshold asked for (``used`` in the record may be lower: the largest size's longest run)
    given: float = 0.0

    def measured(self, fit) -> dict:
        """``record`` with where the runs set aside lie against ``fit``, the law fitted to the
        rest: ``median_offset``, the median of their measured loss over the law's, minus 1,
        and the note saying so. Whether short runs sit above the law is this table's to show,
        not the policy's to assert."""
        if not self.record.get("set_aside") or self.aside is None:
            return self.record
        try:
            law = np.asarray(fit.predict_table(self.aside), dtype=float)
        except ToolkitError:  # a law that cannot predict these rows (a column it needs): say nothing of them
            return self.record
        offset = float(np.median(self.aside["loss"].to_numpy(float) / law - 1.0))
        if not np.isfinite(offset):
            return self.record
        used = self.record["min_tokens_per_param"]
        return {**self.record, "median_offset": offset,
                "note": _short_note(self.points, self.kept, self.aside, used, _lowered(self.given, used), offset)}


def set_aside_short_runs(points: pd.DataFrame, law: str, candidates=None,
                         min_tpp=None) -> tuple[pd.DataFrame, ShortRuns]:
    """``points`` without the runs too short to be on ``law`` (or on ``auto``'s candidates):
    :func:`set_aside_short` at the policy's threshold, or ``min_tpp``, unless the runs left
    cannot determine the law; and what was set aside (:class:`ShortRuns`)."""
    if min_tpp is None:
        min_tpp = POLICY.min_tokens_per_param.value
    try:
        min_tpp = float(min_tpp)
    except (TypeError, ValueError):
        min_tpp = float("nan")
    if not (min_tpp >= 0 and np.isfinite(min_tpp)):
        raise InputError(f"min_tpp={min_tpp!r} is not a number of tokens per parameter", field="--min-tpp",
                         fix="give 0 (fit every run) or a positive number such as 20")
    names = (candidates or auto_candidates(points)) if str(law).lower() == AUTO else (law,)
    try:
        uses_tokens = any("D" in get_law(n).inputs for n in names)
    except Exception:  # an unknown law name: fit_law says so in its own words
        uses_tokens = True
    if not uses_tokens or "tokens" not in points.columns or min_tpp == 0:
        return points, ShortRuns({"min_tokens_per_param": min_tpp, "set_aside": 0, "note": ""} if uses_tokens else {})
    kept, aside = set_aside_short(points, min_tpp)
    used = short_threshold(points, min_tpp)
    record = {"min_tokens_per_param": used, "set_aside": int(len(aside)), "note": ""}
    lowered = _lowered(min_tpp, used)
    if len(aside) and not any(_determines(kept, n) for n in names):
        record.update(set_aside=0, note=(
            f"short runs: only {len(kept)} of {len(points)} points ({n_distinct(kept['params']) if len(kept) else 0} "
            f"sizes) were trained on {used:.3g} tokens per parameter or more, too few to determine "
            f"{' or '.join(names)}: every run is fitted, the short ones too, though runs that short may lie off a law of N and D"))
        return points, ShortRuns(record)
    if len(aside):
        record["note"] = _short_note(points, kept, aside, used, lowered)
        return kept, ShortRuns(record, points, kept, aside, min_tpp)
    return points, ShortRuns(record)


def _short_note(points: pd.DataFrame, kept: pd.DataFrame, aside: pd.DataFrame, used: float, lowered: str,
                offset: float | None = None) -> str:
    """The line that says which runs were set aside and why; with ``offset``, where they lie
    against the law fitted to the rest (:meth:`ShortRuns.measured`)."""
    low = aside["tokens"] / aside["params"]
    gone = n_distinct(points["params"]) - n_distinct(kept["params"])
    here = _offset_words(offset, "these", "the law fitted to the rest")
    return (f"short runs: {len(aside)} of {len(points)} points trained on fewer than {used:.3g} tokens per parameter "
            f"({_span(low)}) are set aside" + (f", and with them {gone} size(s) with no longer run" if gone else "")
            + f": runs that short are dominated by warmup and the high-learning-rate phase, off a law of N and D"
              f"{here}{lowered}; --min-tpp 0 fits them")


def _offset_words(offset: float | None, who: str, law: str) -> str:
    """Where set-aside runs lie against ``law`` (their median measured / law - 1), as a clause."""
    if offset is None:
        return ""
    if abs(offset) < 1e-4:  # far under any measured loss's noise: no direction to state
        return f"; {who} lie on {law} (a median offset under 0.01%)"
    return f"; {who} lie a median {100 * abs(offset):.2g}% {'above' if offset > 0 else 'below'} {law}"


def _lowered(given: float, used: float) -> str:
    return (f"; the threshold is {given:g}, lowered to the largest size's longest run so that the size nearest the "
            f"question stays" if used < given else "")


def _determines(points: pd.DataFrame, name: str) -> bool:
    try:
        return determinable(points, name)
    except Exception:  # a name fit_law will refuse in its own words
        return True


def _span(values) -> str:
    lo, hi = f"{float(values.min()):.3g}", f"{float(values.max()):.3g}"
    return lo if lo == hi else f"{lo} to {hi}"

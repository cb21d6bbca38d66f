"""From data to answers: load points, fit or take a law, and answer the compute-matched
questions (:func:`run_study`), with each run's own loss curve answered beside the joint
law; and the same questions for a published model family (:func:`published_case`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..common.errors import InputError, RecordError, ToolkitError
from ..common.records import find_run_dirs, read_summary
from ..common.text import format_table, model_label, sci, si
from ..data.loading import load_points, table_notes
from ..data.points import repeat_groups
from ..data.published import PUBLISHED_LAWS, PUBLISHED_MODELS, published_law
from ..fitting.curves import fit_curve, read_curve
from ..fitting.result import LawFit
from ..laws import get_law
from ..selection.checked import AUTO, CheckedFit, fit_checked, load_checked, prediction_distance
from ..selection.checks import Check, data_checks, ordered, self_checks
from ..selection.policy import beside_error_model
from ..selection.size_cuts import largest_sizes
from .answers import ExtrapolationResult, _times
from .extrapolate import extrapolate, tokens_to_match
from .specs import ModelSpec, fresh_runs, measured_loss, models_from_points, named_target, parse_models, parse_target

__all__ = ["Study", "run_study", "run_studies", "measured_crossing", "measured_curves", "fit_run_curves", "PublishedCase",
           "published_case", "with_measured_loss"]


@dataclass
class PublishedCase:
    """A published model family (e.g. LLaMA) with its reported cost and law-based answers."""

    family: str
    models: tuple
    target: Any
    results: list[ExtrapolationResult]

    def cost_rows(self) -> list[dict]:
        """Per smaller model: GPU-hour and 6ND multiples needed to reach the target's compute."""
        t = self.target
        rows = []
        for m in self.models:
            if m.params >= t.params:
                continue
            rows.append({
                "model": m.name, "params": m.params, "tokens": m.tokens, "gpu_hours": m.gpu_hours,
                "gpu_hour_multiple": (t.gpu_hours / m.gpu_hours) if (t.gpu_hours and m.gpu_hours) else None,
                "flops_6nd": m.flops_6nd, "flops_6nd_multiple": t.flops_6nd / m.flops_6nd,
            })
        return rows

    def to_dict(self) -> dict:
        t = self.target
        return {
            "family": self.family,
            "source": t.source,
            "target": {"name": t.name, "params": t.params, "tokens": t.tokens, "gpu_hours": t.gpu_hours,
                       "flops_6nd": t.flops_6nd},
            "cost": self.cost_rows(),
            "laws": [{**r.to_dict(), "note": _mismatch_note(r.law)} for r in self.results],
        }

    def to_frame(self):
        """One row per (law, model): the published cost multiples beside each law's answers."""
        import pandas as pd

        cost = {r["model"]: r for r in self.cost_rows()}
        frames = []
        for r in self.results:
            f = r.to_frame()
            f.insert(0, "law", r.law.name)
            for col in ("gpu_hours", "gpu_hour_multiple", "flops_6nd_multiple"):
                f[col] = [cost.get(name, {}).get(col) for name in f["name"]]
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def table(self) -> str:
        t = self.target
        rows = [{"model": r["model"], "params": si(r["params"]), "tokens": si(r["tokens"]),
                 "GPU-hours": f"{r['gpu_hours']:,.0f}" if r["gpu_hours"] else "-",
                 "x GPU-hours": _times(r["gpu_hour_multiple"]),
                 "6ND FLOPs": sci(r["flops_6nd"]), "x 6ND FLOPs": _times(r["flops_6nd_multiple"])}
                for r in self.cost_rows()]
        out = [f"{self.family}: training a smaller model on {t.name}'s compute "
               f"({t.gpu_hours:,.0f} {self.models[0].gpu} GPU-hours, {sci(t.flops_6nd)} FLOPs as 6ND)",
               f"Source: {t.source}",
               f"x GPU-hours: how many times longer each model would train on {t.name}'s GPU-hours at its own "
               "reported throughput; x 6ND FLOPs: the same ratio counted in 6ND FLOPs.", "",
               format_table(rows, formats={k: str for k in rows[0]})]
        for r in self.results:
            out += ["", "=" * 78, r.table(), f"Note: {_mismatch_note(r.law)}"]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _mismatch_note(law: LawFit) -> str:
    note = (f"losses are {law.name}'s predictions on its own training data and tokenizer "
            "(MassiveText for the Chinchilla laws), not LLaMA's losses; read them for relative answers")
    if law.law_obj.takes_unique_tokens:
        note += ("; the decay terms for repeated data come from Muennighoff et al. 2023's C4 runs "
                 "(muennighoff2023's base law too)")
    return note


def published_case(family: str = "llama", laws: Sequence[str] = ("hoffmann2022", "besiroglu2024"),
                   unique_tokens: float | None = None) -> PublishedCase:
    """The compute-matched questions for a published family, answered with published laws.

    For LLaMA (Touvron et al. 2023, Table 15) the target is LLaMA-65B; each smaller model
    gets its GPU-hour and 6ND multiples to the 65B's compute, then every law in ``laws``
    answers the extrapolation questions. No fitting happens, so this is instant.
    With ``unique_tokens`` (LLaMA's corpus is about 1.4e12 tokens, Touvron et al. 2023,
    Sec. 2), the same questions follow under that data limit: with Muennighoff et al.
    2023's published data-constrained law, and with each law of ``laws`` given their decay
    terms, after the unconstrained answers.
    """

    try:
        family_models = PUBLISHED_MODELS[family]
    except KeyError:
        raise InputError(f"unknown published family {family!r}", field="published",
                         fix="use one of " + ", ".join(PUBLISHED_MODELS)) from None
    target = max(family_models, key=lambda m: m.params)
    specs = [ModelSpec(m.params, m.tokens, name=m.name) for m in family_models]
    tspec = next(s for s in specs if s.params == target.params)
    results = [extrapolate(published_law(name), specs, target=tspec) for name in laws]
    if unique_tokens is not None:
        limited = ["muennighoff2023"] + [name for name in laws if name != "muennighoff2023"]
        results += [extrapolate(published_law(name), specs, target=tspec, unique_tokens=unique_tokens)
                    for name in limited]
    return PublishedCase(family={"llama": "LLaMA"}.get(family, family), models=family_models,
                         target=target, results=results)


# ============================================================================ from data to answers

@dataclass
class Study:
    """Everything one extrapolation needs and produces: the points, the law (fitted or
    published), the answers, and the measured per-run curves with their own fits."""

    points: Any
    fit: LawFit
    result: ExtrapolationResult
    curves: dict = field(default_factory=dict)
    curve_fits: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    #: the law choice, backtest and self-checks behind ``fit`` (:mod:`analysis.selection.checked`)
    checked: Any = None

    @property
    def checks(self) -> list:
        return list(self.checked.checks) if self.checked is not None else []


def _law_from(law) -> tuple[LawFit | None, str, Any]:
    """A ready LawFit (object, published name or saved JSON), else the name of a law to fit;
    third, a saved fit's :class:`analysis.selection.checked.CheckedFit` (its tied laws and error model)."""

    if isinstance(law, LawFit):
        return law, "", None
    if law in PUBLISHED_LAWS:
        return published_law(law), "", None
    if isinstance(law, str) and law.endswith(".json"):

        saved = load_checked(law)
        return saved.fit, "", saved
    return None, str(law), None


def measured_curves(source, points) -> dict:
    """Each run's measured loss curve, run -> DataFrame(params, step, tokens, loss[, lr]).

    From a table with ``run`` and ``step`` columns, the rows of each run; from run
    records, each run's metrics.jsonl read by :func:`analysis.fitting.curves.read_curve` with its
    ``val_loss`` (every logged row is kept, so the learning-rate schedule is complete;
    ``loss`` is NaN where no validation loss was measured). Runs with fewer than three
    measured losses give no curve.
    """
    from pathlib import Path


    out: dict = {}
    if points is not None and {"run", "step"} <= set(points.columns):
        for run, g in points.groupby("run"):
            if len(g) >= 3:
                out[str(run)] = g[["params", "tokens", "loss", "step"]].sort_values("tokens").reset_index(drop=True)
        return out
    if not isinstance(source, (str, Path)) or not Path(source).is_dir():
        return out
    sizes = {}
    if points is not None and "run" in points.columns:
        sizes = dict(zip(points["run"].astype(str), points["params"].astype(float)))

    for run_dir in find_run_dirs(source):
        try:
            summary = read_summary(run_dir)
        except RecordError:  # an unreadable record was refused or skipped when the points were read
            continue
        if summary["status"] == "diverged":
            continue
        try:
            df = read_curve(run_dir, loss="val_loss")
        except ToolkitError:  # no validation loss logged: nothing to plot or fit
            continue
        if "tokens" not in df.columns or int(np.isfinite(df["loss"]).sum()) < 3:
            continue
        name = str(summary["run_name"])
        df.insert(0, "params", sizes.get(name, float(summary["params"])))
        out[name] = df
    return out


def fit_run_curves(curves: Mapping[str, Any], models: Sequence[ModelSpec], bootstrap: int = 0, seed: int = 0,
                   level: float = 0.90) -> tuple[dict, list[str]]:
    """Fit ``saturating_power`` to the curve of each model's own run (the run at its largest
    budget, else the longest curve of that size); returns params -> LawFit and notes.
    ``bootstrap`` refits each curve with noise of its own residuals' size, so its answers
    get intervals too (:func:`analysis.fitting.bootstrap.parametric_refits`)."""

    fits, notes = {}, []
    for m in models:
        run = m.run if m.run in curves else None
        if run is None:
            same = [(len(c), r) for r, c in curves.items() if float(c["params"].iloc[0]) == m.params]
            run = max(same)[1] if same else None
        if run is None:
            continue
        try:
            fits[m.params] = fit_curve(curves[run], law="saturating_power", bootstrap=bootstrap, seed=seed,
                                       level=level)
        except ToolkitError as e:
            notes.append(f"no own-curve answer for {m.name} (run {run}): {e}")
    return fits, notes


def runs_of(points, params: float, unique_tokens: float | None = None):
    """The points of one model size (to a relative 1e-6, as sizes read back from text differ)
    that answer the question asked with ``unique_tokens`` available
    (:func:`analysis.extrapolation.specs.fresh_runs`)."""
    return fresh_runs(points[np.isclose(points["params"].to_numpy(float), params, rtol=1e-6)], unique_tokens)


def with_measured_loss(spec, points):
    """``spec`` with the loss measured at its size and tokens when ``points`` has a run there
    (the mean over repeats), so that a model given by numbers is the same question as the
    model named; ``spec`` unchanged otherwise. ``spec`` may be a target as
    :func:`analysis.extrapolation.specs.parse_target` reads it: a size and tokens become a
    :class:`ModelSpec` only when measured."""
    if isinstance(spec, str) and spec.strip() != "largest":
        parsed = parse_target(spec)
        if isinstance(parsed, tuple):
            found = with_measured_loss(ModelSpec(*parsed), points)
            return found if found.loss is not None else spec
        return spec
    if not isinstance(spec, ModelSpec) or spec.loss is not None or spec.tokens is None:
        return spec
    runs = runs_of(points, spec.params)
    at = runs[np.isclose(runs["tokens"].to_numpy(float), spec.tokens, rtol=1e-6)]
    loss = measured_loss(at)
    return spec if loss is None else replace(spec, loss=loss)


def measured_answers(result, points) -> None:
    """Set each smaller model's ``measured`` answer: where its own runs (:func:`runs_of`) cross
    the target's loss (its measured loss where it has one, unless a data limit asks about the
    law's run on U unique tokens), log-linear in tokens between the
    two runs that bracket it (:func:`analysis.extrapolation.validate.measured_crossing`), and whether the
    law's tokens-to-match interval holds it. A model whose longest run stays above the
    target is "not reached"; the law's interval is then contradicted only if it ends
    below that run's tokens."""

    t = result.target
    # under a data limit the answers match the law's run on U unique tokens, which no one measured
    loss = t.loss_measured if t.loss_measured is not None and result.unique_tokens is None else t.loss
    if loss is None:
        return
    for m in result.models:
        runs = runs_of(points, m.params, result.unique_tokens)
        if runs.empty:
            continue
        crossing = measured_crossing(runs, float(loss))
        longest = float(runs["tokens"].max())
        iv = m.intervals.get("tokens_to_match")
        lo, hi = iv if iv else ((m.tokens_to_match,) * 2 if m.tokens_to_match is not None else (None, None))
        if crossing is not None:
            inside = None if lo is None else bool(lo <= crossing <= (hi if hi is not None else math.inf))
        else:
            # not reached by the longest run: only a law that reaches the target before it is contradicted
            inside = None if hi is None else bool(not math.isfinite(hi) or hi > longest)
        m.measured = {"tokens": crossing, "longest": longest, "target_loss": float(loss), "inside": inside}


#: Relative noise of one measured loss below which a run cannot contradict an answer: reruns
#: with other seeds differ by less (Muennighoff et al. 2023's seed runs: median std 0.006 nats
#: at losses near 3, 0.2%; Gadre et al. 2024's C4 evaluation: token-level 95% bounds of about
#: +-0.2%), so 1% is several times the noise.
MEASUREMENT_NOISE = 0.01


def repeat_spread(points) -> float:
    """Median relative standard deviation of the losses of runs that repeat one (N, D)
    (seeds); 0 without repeats."""

    groups = repeat_groups(points)
    loss = points["loss"].to_numpy(float)
    sds = [np.std(loss[groups == g], ddof=1) / np.mean(loss[groups == g])
           for g in np.unique(groups) if np.sum(groups == g) > 1]
    return float(np.median(sds)) if sds else 0.0


def measured_crossing(runs: pd.DataFrame, loss: float) -> float | None:
    """Tokens at which a model's runs (one size, several budgets) first reach ``loss``:
    log-linear in tokens between the two runs that bracket it; None if no run reaches it."""
    r = runs.sort_values("tokens")
    t, l = r["tokens"].to_numpy(float), r["loss"].to_numpy(float)
    below = np.flatnonzero(l <= loss)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(t[0]) if l[0] == loss else None  # already below at its shortest run: not bracketed
    f = (l[i - 1] - loss) / (l[i - 1] - l[i])
    return float(math.exp(math.log(t[i - 1]) + f * (math.log(t[i]) - math.log(t[i - 1]))))


#: The name of :func:`measured_agreement`'s check (one per target: a study asks one).
MEASURED_AGREEMENT = "measured runs agree with the answers"


def measured_agreement(result, points, level: float = 0.90):
    """A self-check of the answers against the runs they come from: it fails when a smaller
    model's measured run contradicts its answer. Either the law says the model matches the
    target's loss after D tokens, but a run of that size with D' >= D tokens measured a loss
    above the target by more than the noise; or the law says it never matches, but a run
    measured below the target by more than the noise. Not the law's residual: that is its
    misfit, which is what this check is for. The noise is that of a measured loss:
    :data:`MEASUREMENT_NOISE`, or the spread of repeated runs (seeds) where the table has them."""
    from scipy.stats import norm


    name = MEASURED_AGREEMENT
    t, fit = result.target, result.law
    if t.loss is None or not result.models:
        return Check(name, "ok", "no smaller model to check")
    tol = max(MEASUREMENT_NOISE, float(norm.ppf(0.5 + level / 2)) * repeat_spread(points))
    bad, seen = [], 0
    for m in result.models:
        runs = runs_of(points, m.params, result.unique_tokens)
        if runs.empty:
            continue
        seen += 1
        if m.tokens_to_match is not None:
            late = runs[(runs["tokens"] >= m.tokens_to_match * (1 - 1e-9)) & (runs["loss"] > t.loss * (1 + tol))]
            if len(late):
                r = late.sort_values("tokens").iloc[-1]
                bad.append(f"{model_label(m.params, m.name)}: the law says it reaches the target's loss {t.loss:.4g} "
                           f"at {si(m.tokens_to_match)} tokens, but its run at {si(float(r['tokens']))} tokens "
                           f"measured {float(r['loss']):.4g}, {100 * (float(r['loss']) / t.loss - 1):.1f}% above "
                           f"(noise {100 * tol:.2g}%)")
        else:
            early = runs[runs["loss"] < t.loss * (1 - tol)]
            if len(early):
                r = early.sort_values("tokens").iloc[0]
                bad.append(f"{model_label(m.params, m.name)}: the law says it never reaches the target's loss "
                           f"{t.loss:.4g}, but its run at {si(float(r['tokens']))} tokens measured "
                           f"{float(r['loss']):.4g} (noise {100 * tol:.2g}%)")
    if bad:
        return Check(name, "fail", "; ".join(bad))
    return Check(name, "ok", f"{seen} smaller model(s) with measured runs, none contradicting its answer "
                             f"(noise {100 * tol:.2g}%)" if seen else "no smaller model has measured runs")


#: the intervals that scale with the tokens to match (FLOPs and compute multiples are D times a constant)
_WITH_TOKENS = ("flops_to_match", "compute_multiple", "compute_multiple_own")


def _beside(value: float, w: float, interval) -> tuple[float, float]:
    """``value`` (1 -+ w), reaching further where ``interval`` (bootstrap, tied laws) does."""
    lo, hi = interval or (value, value)
    lo, hi = beside_error_model(value, w, lo, hi)
    return float(lo), float(hi)


def band_ends(reach, loss_error, w0: float, max_steps: int = 200) -> tuple[float, float]:
    """The tokens at which the model's true curve can first and last meet the target: each end
    of the interval is where the law's loss, moved by the loss error at that end's own tokens,
    meets the target. ``reach(f)`` gives the tokens at which the law reaches f x the target,
    ``loss_error(D)`` the relative half-width of the model's loss at D tokens, ``w0`` its value
    at the point answer (at the model's size alone when the law never reaches the target). The
    upper end is the D at which the law's loss is the target less the half-width there,
    D_hi = reach(1 - w(D_hi)): a true curve that high above the law at D_hi
    (the interval's tail) meets the target only then. Likewise D_lo = reach(1 + w(D_lo)). The
    error model's width changes with the distance in tokens per parameter, so w taken at the
    point answer for both ends (the first step here) puts the upper end too early where the
    band widens beyond the point answer, and too late where it narrows toward the fitted
    runs. Solved by iterating from that first step, and by a bracketed root find once the
    iterates turn back (they then straddle the end); an end whose band reaches the model's
    floor is never (inf).
    """
    from scipy.optimize import brentq

    def solve(sign: float) -> float:
        def step(d: float) -> float:
            return reach(1 + sign * loss_error(d))

        prev, d = None, reach(1 + sign * w0)
        for _ in range(max_steps):
            if not (math.isfinite(d) and d > 0):
                return d
            new = step(d)
            if not (math.isfinite(new) and new > 0) or abs(math.log(new / d)) < 1e-9:
                return new
            if prev is not None and (new > d) != (d > prev):
                # the iterates turned back (the band narrows toward this end): step(D) - D
                # changes sign between the last two, where plain iteration may circle the end
                # without settling
                u = brentq(lambda u: math.log(step(math.exp(u))) - u, *sorted((math.log(prev), math.log(d))),
                           xtol=1e-12)
                return math.exp(u)
            prev, d = d, new
        return d

    return solve(+1.0), solve(-1.0)


def widen_by_distance(result, checked, level: float) -> None:
    """Widen ``result``'s intervals by the held-out error expected at each answer's distance
    from the fitted design (:class:`analysis.selection.policy.ErrorModel`).

    The law's value at the target is uncertain by its half-width w_t at the target's size
    and tokens per parameter, each smaller model's own loss by w_m at its size and at the
    tokens it needs. The tokens to match a target loss L_t then lie between the tokens at
    which the model's law reaches L_t (1 + w) and L_t (1 - w), each w taken at that end's own
    tokens (:func:`band_ends`): the loss error carried through the law's slope d ln L / d ln D,
    with w = sqrt(w_t^2 + w_m^2) when L_t is the law's value
    and w = w_m when it was measured (the question is then about that number). The share of
    answers that never match is that of a normal loss error (sd w / z) putting the target at
    or below the model's floor, where it exceeds the bootstrap's share. Each interval is the
    error model's, reaching further only where the bootstrap's or the tied laws' does
    (:func:`analysis.selection.policy.beside_error_model`: the error model measures the same
    held-out error again, so the two are not added)."""
    from scipy.stats import norm

    t = result.target
    if t.params is None or t.loss is None:
        return
    fit, em, law = result.law, checked.error_model, result.law.law
    z = float(norm.ppf(0.5 + level / 2))
    w_t = float(checked.distance_half_width(t.params, level, D=t.tokens))
    t.loss_interval = _beside(t.law_value, w_t, t.loss_interval)
    ratio = float(checked.distance(t.params))
    # the error model's own record of its scale, c and reach, beside this target's distance
    model = em.to_dict()
    z_n, z_t = em.z_parts(t.params, t.tokens)
    result.distance = {"params_ratio": ratio, "half_width": w_t, "z": float(np.sqrt(em.z2(t.params, t.tokens))),
                       "z_size": z_n, "z_tokens": z_t, "source": em.scale_source,
                       **{k: model[k] for k in ("scale", "leverage", "leverage_splits", "leverage_range",
                                                "leverage_tokens", "leverage_tokens_splits", "leverage_tokens_range",
                                                "leverage_source", "reach")},
                       "beyond_every_split": bool(ratio > em.reach)}
    U = result.unique_tokens
    for m in result.models:
        if m.loss_at_target_compute is not None:
            w_c = float(checked.distance_half_width(m.params, level, D=m.tokens_at_target_compute))
            m.intervals["loss_at_target_compute"] = _beside(m.loss_at_target_compute, w_c,
                                                            m.intervals.get("loss_at_target_compute"))
        # the model's own loss error where it would match: its size, and the tokens it needs
        def loss_error(D, m=m):
            w_m = float(checked.distance_half_width(m.params, level, D=D))
            return w_m if t.matches_measured else math.hypot(w_t, w_m)

        w = loss_error(m.tokens_to_match)
        if w <= 0:
            continue
        n_law = m.law_params or m.params

        def reach(f, n_law=n_law):
            return float(tokens_to_match(law, fit.params, n_law, t.loss * f, U)) if f > 0 else math.inf

        d_lo, d_hi = band_ends(reach, loss_error, w)
        p_never = float(norm.cdf((m.floor / t.loss - 1.0) / (w / z)))
        m.unreachable_fraction = max(m.unreachable_fraction or 0.0, p_never)
        point = m.tokens_to_match
        if point is None and not math.isfinite(d_lo):
            continue  # neither the law nor its loss band reaches the target
        # a never answer whose band reaches the target runs from where the band's upper end is
        # met to never, as a bootstrap's draws would give it
        a, b = m.intervals.get("tokens_to_match", (point, point) if point is not None else (d_lo, d_hi))
        a, b = min(a, d_lo), max(b, d_hi)
        m.intervals["tokens_to_match"] = (a, b)
        if point is not None:
            for q in _WITH_TOKENS:
                v = getattr(m, q)
                if v is not None:
                    qa, qb = m.intervals.get(q, (v, v))
                    m.intervals[q] = (min(qa, v * a / point), max(qb, v * b / point))
        if U is not None:
            # epochs are tokens over the U unique tokens, with or without a bootstrap
            m.intervals["epochs_to_match"] = (a / U, b / U)


def answer_distances(result, checked=None) -> None:
    """Set each smaller model's ``distance``: how far its tokens-to-match answer extrapolates,
    the record ``scaling fit --predict`` gives a prediction at (N, D*)
    (:func:`analysis.selection.checked.prediction_distance`): its size over the largest fitted,
    its tokens per parameter against the range fitted at the fitted size nearest it, and, with
    an error model, its z in each direction and whether a backtest split reached its size."""
    for m in result.models:
        if m.tokens_to_match is not None:
            m.distance = prediction_distance(result.law, m.law_params or m.params, m.tokens_to_match, checked)


def widen_by_tied_laws(result, tied: Mapping[str, Any], specs, **options) -> None:
    """Widen every bootstrap interval of ``result`` to cover the same answer under each law
    of ``tied`` (the laws the backtest cannot tell apart from the choice, or a combination's
    own laws): the spread across laws is part of an extrapolation's uncertainty that one
    law's bootstrap does not see (``docs/analysis.md``, Honest intervals)."""
    others = [extrapolate(f, specs, **options) for f in tied.values()]
    t = result.target
    if t.loss_interval is not None:
        vals = [o.target.loss_law for o in others if o.target.loss_law is not None and np.isfinite(o.target.loss_law)]
        t.loss_interval = (min([t.loss_interval[0], *vals]), max([t.loss_interval[1], *vals]))
    for i, m in enumerate(result.models):
        for q, (lo, hi) in list(m.intervals.items()):
            vals = [getattr(o.models[i], q) for o in others]
            vals = [v for v in vals if v is not None and np.isfinite(v)]
            # an answer a tied law cannot reach (None) leaves the interval as the draws have it
            m.intervals[q] = (min([lo, *vals]), max([hi, *vals]))


def run_study(source=None, law="auto", target="largest", models=None, bootstrap: int = 0, seed: int = 0,
              n_jobs: int | None = None, level: float = 0.90, flops: str = "6nd", curves: bool = True,
              columns=None, policy: str = "raise", resample: str = "auto", allow_repeats: bool = False,
              backtest: bool = False, unique_tokens: float | None = None, sizes=None, checked=None,
              progress=None, min_tpp: float | None = None) -> Study:
    """Load points, fit (or take) a law, and answer the compute-matched questions.

    ``source``: a sweep/run directory, a CSV/Parquet table or a DataFrame (see
    :func:`analysis.data.loading.load_points`), or None when ``models`` and a ready law are given.
    ``law``: ``auto`` (the default: the law :data:`analysis.selection.policy.POLICY` chooses
    by its backtest at distance, :func:`analysis.selection.checked.fit_checked`), a law to fit on the points (``chinchilla``, ``gadre2024``, ``kaplan_nd``), a
    published law's name (``hoffmann2022``...), a saved fit (``fit.json``) or a LawFit.
    ``models``: sizes to ask about (default: every size in the data). With ``curves``, each
    model's own measured loss curve is fitted too and answered beside the joint law.
    ``resample``: what the bootstrap draws, as :func:`analysis.fitting.fit.fit_law` takes it.
    ``unique_tokens``: answer under a limit of U unique tokens (:func:`analysis.extrapolation.extrapolate.extrapolate`).
    ``sizes``: which sizes the law is fitted to (:func:`analysis.selection.checked.fit_checked`: ``auto``
    with ``law="auto"``, else every size; or a fraction of the largest).
    ``min_tpp``: runs under this many tokens per parameter are not fitted (None: the policy's
    value; 0: every run; :func:`analysis.selection.checked.fit_checked`).
    ``progress``: the bootstrap's progress on stderr (None: a bar on a terminal, log lines
    otherwise; False: nothing, as ``--quiet`` asks).
    ``checked``: a :class:`analysis.selection.checked.CheckedFit` of these same points, used as it is
    (``law``, ``bootstrap`` and the fit options are then not read), so that several questions
    about one table fit it once.
    """
    ready, to_fit, saved = _law_from(law)
    if ready is not None and sizes is not None:
        raise InputError(f"--sizes chooses the sizes a law is fitted to, and {ready.name} is already fitted",
                         field="--sizes", fix="drop --sizes, or give a law to fit such as auto or chinchilla")
    if ready is not None and min_tpp is not None:
        raise InputError(f"--min-tpp chooses the runs a law is fitted to, and {ready.name} is already fitted",
                         field="--min-tpp", fix="drop --min-tpp, or give a law to fit such as auto or chinchilla")
    points, notes = None, []
    if source is not None:

        points = load_points(source, columns=columns, policy=policy)
        notes += table_notes(points)
        if isinstance(unique_tokens, (int, float)) and 0 < unique_tokens < float(points["tokens"].min()):
            # every run of the table already trained on more tokens than exist: the law fitted
            # to them cannot answer under that limit
            raise InputError(f"{float(unique_tokens):.4g} unique tokens is fewer than the smallest run of the table "
                             f"trained on ({si(float(points['tokens'].min()))} tokens)", field="--unique-tokens",
                             fix="give the unique tokens of the corpus the answers may repeat, at least the "
                                 "tokens of the table's runs (e.g. --unique-tokens 1e9)")
    if checked is not None:
        if points is None:
            raise InputError("a checked fit answers about the points it was fitted to", field="source",
                             fix="pass the same points table as source")
        # a copy: this study appends its own checks (measured agreement) to the list
        checked = replace(checked, checks=list(checked.checks))
        fit = checked.fit
    elif ready is None:
        if points is None:
            raise InputError(f"law {to_fit!r} has to be fitted, and no data were given", field="law",
                             fix="give a sweep directory or table, or a published law such as hoffmann2022")

        if to_fit != AUTO:
            get_law(to_fit).check_joint()
        checked = fit_checked(points, to_fit, run_backtest=backtest, allow_repeats=allow_repeats, sizes=sizes,
                              min_tpp=min_tpp, bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, level=level, resample=resample,
                              progress=progress)
        fit = checked.fit
    else:
        fit = ready
        checked = saved  # a saved fit's tied laws and error model size its intervals as before
        if points is not None:

            # a published law was fitted to other data: only the table itself can be checked
            checks = ordered(data_checks(points)) if fit.is_published else self_checks(fit, points)
            checked = replace(saved, checks=checks) if saved is not None else CheckedFit(fit, checks=checks)
    if models is not None:
        known = models_from_points(points, flops=flops) if points is not None else ()
        specs = parse_models(models, known) if isinstance(models, str) else [
            m if isinstance(m, ModelSpec) else ModelSpec(m) for m in models]
    elif points is not None:
        specs = models_from_points(points, flops=flops)
    else:
        raise InputError("no models to ask about", field="models",
                         fix="give a sweep directory or table, or --models such as 7e9,13e9")
    if points is not None:  # a preset name (--target mini) stands for that model, as in --models
        target = named_target(target, models_from_points(points, flops=flops))
        # a model given by its numbers is the run the table has there, measured loss and all
        specs = [with_measured_loss(m, points) for m in specs]
        target = with_measured_loss(target, points)
    run_curves, curve_fits = {}, {}
    if curves and points is not None:
        run_curves = measured_curves(source, points)
        if run_curves:
            curve_fits, more = fit_run_curves(run_curves, specs, bootstrap=bootstrap, seed=seed, level=level)
            notes += more
            with_curve = {float(c["params"].iloc[0]) for c in run_curves.values() if len(c)}
            bare = [m for m in specs if not runs_of(points, m.params).empty
                    and not any(np.isclose(m.params, n, rtol=1e-6) for n in with_curve)]
            notes += [f"no own-curve answer for {model_label(m.params, m.name)}: its run has fewer than three "
                      "logged validation losses (metrics.jsonl empty, missing or cut short)" for m in bare]
    result = extrapolate(fit, specs, target=target, flops=flops, level=level, curve_fits=curve_fits,
                         unique_tokens=unique_tokens)
    if checked is not None and checked.tied and result.n_draws:
        widen_by_tied_laws(result, checked.tied, specs, target=target, flops=flops, level=level,
                           unique_tokens=unique_tokens)
    if checked is not None and checked.error_model is not None:
        widen_by_distance(result, checked, level)
    if not fit.is_published:
        answer_distances(result, checked)
    if points is not None:
        measured_answers(result, points)
    if checked is not None and points is not None and not fit.is_published:

        checked.checks = ordered([*checked.checks, measured_agreement(result, points, level)])
    if checked is not None and checked.keep < 1.0 and points is not None:

        lo = float(largest_sizes(points, checked.keep)["params"].min())
        below = [si(m.params) for m in specs if m.params < lo * (1 - 1e-6)]
        if below:
            result.warnings.append(f"{', '.join(below)} lie below the sizes the law was fitted to (from {si(lo)} up, "
                                   "the size cut): their answers extrapolate the law down in N")
    if ready is not None and points is not None and fit.is_published:
        result.warnings.append(f"{fit.name} is a published law fitted on other data; its losses are not "
                               "on this data's scale, so compare its answers with care")
    return Study(points=points, fit=fit, result=result, curves=run_curves, curve_fits=curve_fits, notes=notes,
                 source="" if source is None else (points.attrs.get("source", "") if points is not None else ""),
                 checked=checked)


def run_studies(source=None, targets: Sequence = ("largest",), law="auto", **options) -> list[Study]:
    """:func:`run_study` for each of several ``targets``, the table fitted once: the first
    study's checked fit (law choice, bootstrap, tied laws, error model) answers every other
    target, so the answers differ only in what they were asked."""
    targets = list(targets)
    if not targets:
        raise InputError("no target given", field="--target", fix="give one or more, e.g. --target 1e9:2e10,largest")
    first = run_study(source, law=law, target=targets[0], **options)
    again = {}
    if _law_from(law)[0] is None and first.checked is not None and source is not None:
        # the fit's own checks; each study adds its own target's measured agreement
        again["checked"] = replace(first.checked,
                                   checks=[c for c in first.checked.checks if c.name != MEASURED_AGREEMENT])
    # a published or saved law has nothing to refit
    return [first, *(run_study(source, law=law, target=t, **again, **options) for t in targets[1:])]

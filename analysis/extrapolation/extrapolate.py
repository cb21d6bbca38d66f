"""Compute-matched extrapolation: what would a smaller model do with a larger model's compute?

Given a law L(N, D) (fitted or published) and a target model (N_T, D_T), every smaller
model N is asked three questions:

1. **At equal compute**, which model wins? The small model trained on the target's compute
   sees D = C_T / (6N) tokens and reaches ``loss_at_target_compute`` = L(N, C_T / (6N)).
2. **To match the target's loss** L_T, how many tokens does it need? For the Chinchilla form
   (Hoffmann et al. 2022, eq. 2) the answer is closed-form,
   D* = (B / (L_T - E - A N^-alpha))^(1/beta), and does not exist when the model's own
   floor E + A N^-alpha lies at or above L_T ("unreachable").
3. **Counting inference** at 2N FLOPs per token (Sardana and Frankle 2023, "Beyond
   Chinchilla-Optimal"), after how many served tokens T is the small, longer-trained model
   the cheaper one? 6 N D* + 2 N T = 6 N_T D_T + 2 N_T T gives
   T = (6 N D* - 6 N_T D_T) / (2 (N_T - N)), or 0 when the small model is already cheaper
   to train.

Laws other than the Chinchilla family are solved with a bracketed root find in log D.
When the law carries bootstrap draws (``LawFit.samples``), every draw goes through the
same computation and the answers get percentile intervals; a draw under which the target
is unreachable counts as +inf tokens, and the fraction of such draws is reported.

FLOPs are counted as 6ND by default (Kaplan et al. 2020, Sec. 2.1). A run table with a
detailed per-token count (Hoffmann et al. 2022, App. F) can be used instead with
``flops="detailed"``; then each model's training cost per token f comes from its own rows
and inference costs f/3 per token (the forward pass; backward is twice the forward).
The two conventions are never mixed within one result.

See ``docs/extrapolation.md`` for the questions, formulas, conventions and the interval method.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..common.errors import InputError
from ..common.text import num, si
from ..fitting.result import LawFit, check_interval_args, law_json
from ..laws import D_MAX, Law, get_law
from ..laws.muennighoff import BASE_PARAMS, MUENNIGHOFF2023_DECAY
from .answers import FLOP_CONVENTIONS, QUANTITIES, ExtrapolationResult, ModelAnswer
from .specs import ModelSpec, Target, models_from_points, parse_models, parse_target

__all__ = [
    "ModelSpec", "Target", "ModelAnswer", "ExtrapolationResult", "extrapolate",
    "parse_target", "parse_models", "models_from_points", "floor_loss", "tokens_to_match",
    "breakeven_inference_tokens", "FLOP_CONVENTIONS", "D_MAX", "with_data_limit",
]


# ============================================================================ law algebra

def _draw_params(fit: LawFit) -> dict[str, np.ndarray] | None:
    """Bootstrap draws as parameter -> array, with failed (NaN) refits dropped."""
    if fit.samples is None or len(fit.samples) == 0:
        return None
    s = np.asarray(fit.samples, dtype=float)
    s = s[np.all(np.isfinite(s), axis=1)]
    if len(s) == 0:
        return None
    return {p: s[:, i] for i, p in enumerate(fit.law_obj.params)}



def floor_loss(law: str, params: Mapping[str, Any], N, U=None) -> np.ndarray:
    """The loss model N approaches with unlimited data, lim_{D->inf} L(N, D)
    (:meth:`analysis.laws.Law.floor`: E + A / N^alpha for the Chinchilla form,
    (N_c / N)^alpha_N for Kaplan's joint law, E for a run's own curve); with ``U`` unique
    tokens, the floor of repeating them for ever (Muennighoff et al. 2023)."""
    obj = get_law(law)
    obj.check_extrapolates()
    return obj.floor(params, N, U) if U is not None else obj.floor(params, N)


def tokens_to_match(law: str, params: Mapping[str, Any], N, loss, U=None) -> np.ndarray:
    """Tokens D* with L(N, D*) = loss; +inf where loss is at or below the model's floor
    (:meth:`analysis.laws.Law.tokens_to_match`: closed form for the Chinchilla family,
    a bracketed root find in log D otherwise); with ``U``, D* counts repeated tokens."""
    obj = get_law(law)
    obj.check_extrapolates()
    args = (params, np.asarray(N, dtype=float), np.asarray(loss, dtype=float))
    return obj.tokens_to_match(*args, U) if U is not None else obj.tokens_to_match(*args)


def breakeven_inference_tokens(train_small, train_target, infer_small, infer_target) -> np.ndarray:
    """Served tokens after which the small model's total cost drops below the target's.

    Total cost = training FLOPs + inference FLOPs per token x T (Sardana and Frankle 2023):
    train_small + infer_small T = train_target + infer_target T, so
    T = (train_small - train_target) / (infer_target - infer_small), clipped at 0 (the small
    model is already cheaper to train), +inf when the small model cannot match at all,
    NaN when it is not cheaper to serve (not smaller).
    """
    train_small, train_target, infer_small, infer_target = np.broadcast_arrays(
        *[np.asarray(x, dtype=float) for x in (train_small, train_target, infer_small, infer_target)])
    out = np.full(train_small.shape, np.nan)
    cheaper_to_serve = infer_target > infer_small
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (train_small - train_target) / (infer_target - infer_small)
    out[cheaper_to_serve] = np.maximum(t[cheaper_to_serve], 0.0)
    out[cheaper_to_serve & ~np.isfinite(train_small)] = np.inf
    return out



def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval that tolerates +inf draws: each end is an actual draw (the
    order statistic at or beyond the percentile), so an end is +inf only when that many
    draws are unreachable, and never NaN from interpolating between inf and a number."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    q = (1 - level) / 2
    return (float(np.quantile(v, q, method="lower")), float(np.quantile(v, 1 - q, method="higher")))


def _compute(law: Law, params: Mapping[str, Any], model: ModelSpec, target: Target, convention: str,
             target_loss, N: float, U: float | None = None) -> dict[str, np.ndarray]:
    """Every quantity for one model under one parameter set (floats or draw arrays), the
    law evaluated at size ``N`` (the model's size as the law counts it) and, with ``U``,
    with only U unique tokens to repeat; FLOPs follow the convention, the same for every law."""
    f_n = model.train_flops_per_token(convention)
    out: dict[str, np.ndarray] = {}
    out["floor"] = floor_loss(law, params, N, U)
    d_star = tokens_to_match(law, params, N, target_loss, U)
    out["tokens_to_match"] = d_star
    out["flops_to_match"] = f_n * d_star
    own = f_n * model.tokens if model.tokens is not None else None
    out["compute_multiple_own"] = f_n * d_star / own if own else np.full(np.shape(d_star), np.nan)
    if target.flops is not None:
        d_c = target.flops / f_n
        out["tokens_at_target_compute"] = np.asarray(d_c)
        out["loss_at_target_compute"] = get_law(law).loss(params, N, d_c, U)
        out["compute_multiple"] = f_n * d_star / target.flops
        # Inference costs the forward pass, one third of a training token (2N under 6ND).
        out["breakeven_inference_tokens"] = breakeven_inference_tokens(
            f_n * d_star, target.flops, f_n / 3.0, target.flops_per_token / 3.0)
    else:
        nan = np.full(np.shape(d_star), np.nan)
        out.update(tokens_at_target_compute=np.asarray(np.nan), loss_at_target_compute=nan,
                   compute_multiple=nan, breakeven_inference_tokens=nan)
    return out


def _answer(law: Law, point: Mapping[str, float], draws: Mapping[str, np.ndarray] | None, model: ModelSpec,
            target: Target, target_draws, convention: str, level: float, N: float, U: float | None = None) -> dict:
    """Point answers plus intervals over the draws, as plain floats (None = not defined)."""
    best = _compute(law, point, model, target, convention, target.loss, N, U)
    res: dict[str, Any] = {}
    reachable = bool(np.isfinite(best["tokens_to_match"]))
    res["floor"] = float(best["floor"])
    res["tokens_at_target_compute"] = _finite_or_none(best["tokens_at_target_compute"])
    for q in QUANTITIES:
        v = float(best[q])
        res[q] = v if math.isfinite(v) else None
    if not reachable:
        for q in ("tokens_to_match", "flops_to_match", "compute_multiple", "compute_multiple_own",
                  "breakeven_inference_tokens"):
            res[q] = None
    res["intervals"] = {}
    res["unreachable_fraction"] = None
    res["p_wins_at_equal_compute"] = None
    if draws is not None:
        many = _compute(law, draws, model, target, convention, target_draws, N, U)
        res["unreachable_fraction"] = float(np.mean(~np.isfinite(many["tokens_to_match"])))
        for q in QUANTITIES:
            vals = np.broadcast_to(many[q], np.shape(many["tokens_to_match"]))
            if np.all(np.isnan(vals)):
                continue
            res["intervals"][q] = _interval(vals, level)
        if target.flops is not None:
            res["p_wins_at_equal_compute"] = float(np.mean(many["loss_at_target_compute"] < target_draws))
    if U is not None:
        # epochs over the U unique tokens: what a data-limited run would have to repeat
        res["epochs_to_match"] = None if res["tokens_to_match"] is None else res["tokens_to_match"] / U
        res["epochs_at_target_compute"] = (None if res["tokens_at_target_compute"] is None
                                           else res["tokens_at_target_compute"] / U)
        if "tokens_to_match" in res["intervals"]:
            lo, hi = res["intervals"]["tokens_to_match"]
            res["intervals"]["epochs_to_match"] = (lo / U, hi / U)
    return res


# ============================================================================ entry point

def _resolve_target(fit: LawFit, models: list[ModelSpec], target, convention: str,
                    draws, U: float | None = None) -> tuple[Target, list[ModelSpec], Any, ModelSpec | None]:
    target = parse_target(target) if not isinstance(target, ModelSpec) else target
    law = fit.law_obj
    if isinstance(target, float):
        return Target(loss=target, name=f"loss {num(target)}", how="given loss"), models, target, None
    if target == "largest":
        known = [m for m in models if m.tokens is not None]
        if not known:
            raise InputError("no model with a token count to serve as the target", field="target",
                             fix="give --target PARAMS:TOKENS, or models as PARAMS:TOKENS")
        spec = max(known, key=lambda m: (m.params, m.tokens))
        how = "largest model given"
    elif isinstance(target, ModelSpec):
        spec, how = target, "given model"
    else:
        n, d = target
        spec = next((m for m in models if m.params == n and m.tokens == d), None) or ModelSpec(n, d)
        how = "given size and tokens"
        if convention == "detailed" and spec.flops_per_token is None:
            raise InputError("the detailed FLOPs convention needs the target to be a model in the data",
                             field="flops", fix="use --flops 6nd or --target largest")
    f_t = spec.train_flops_per_token(convention)
    n_t = spec.law_params(fit.n_column)
    lt = float(get_law(law).loss(fit.params, n_t, spec.tokens, U))
    lt_draws = get_law(law).loss(draws, n_t, spec.tokens, U) if draws is not None else None
    t = Target(loss=lt, params=spec.params, tokens=spec.tokens, flops=f_t * spec.tokens, flops_per_token=f_t,
               loss_measured=spec.loss, name=spec.name, how=how, law_params=n_t, loss_law=lt)
    if lt_draws is not None:
        t.loss_interval = _interval(lt_draws, fit.ci_level)
    if spec.loss is not None and U is None and not fit.is_published:
        # A target that was trained is asked about as measured: "how many tokens to match that
        # run" means its loss, not the law's value there, whose misfit at the target would
        # otherwise move every answer (docs/analysis.md, the headline answer, backtested).
        # Not under a data limit (the target is then the law's hypothetical run with U), nor
        # with a published law, whose losses are on its own data and tokenizer.
        t.loss, lt_draws = float(spec.loss), None
    smaller = [m for m in models if m.params < spec.params]
    return t, smaller, lt_draws, spec


def extrapolate(fit: LawFit, models: Sequence[ModelSpec] | Iterable[float] | str, target="largest",
                flops: str = "6nd", level: float | None = None,
                curve_fits: Mapping[float, LawFit] | None = None,
                unique_tokens: float | None = None) -> ExtrapolationResult:
    """Answer the compute-matched questions for every model smaller than ``target``.

    ``fit``: any :class:`LawFit` whose law is L(N, D) (chinchilla, gadre2024, kaplan_nd),
    fitted or published; its bootstrap ``samples`` give intervals. ``models``: specs,
    sizes, or a ``"7e9,13e9:1e12"`` string. ``target``: ``"largest"`` (the largest model
    with a token count), a loss, ``(N, D)``/``"N:D"``, or a :class:`ModelSpec`.
    ``flops``: ``"6nd"`` or ``"detailed"`` (models need ``flops_per_token``).
    ``curve_fits``: params -> that model's own ``saturating_power`` curve fit; its answers are
    attached to the model as ``curve``, beside the joint law's.
    ``unique_tokens``: only U unique tokens exist, so every run repeats them (Muennighoff et
    al. 2023): the answers are the law's with U, including the target's own loss, plus the
    epochs each answer needs; "never" means the repetition-limited floor lies above the
    target. A law without a U term gets Muennighoff et al.'s published decay terms on its
    own parameters (:func:`with_data_limit`).
    """
    if not isinstance(fit, LawFit):
        raise InputError(f"expected a LawFit, got {type(fit).__name__}", field="law",
                         fix="pass the result of analysis.fitting.fit.fit_law or analysis.data.published.published_law")
    fit.law_obj.check_joint()
    U = None
    if unique_tokens is not None:
        U = _unique_tokens(unique_tokens)
        fit = with_data_limit(fit)
    if flops not in FLOP_CONVENTIONS:
        raise InputError(f"unknown FLOPs convention {flops!r}", field="flops", fix="use 6nd or detailed")
    if isinstance(models, str):
        models = parse_models(models)
    models = [m if isinstance(m, ModelSpec) else ModelSpec(m) for m in models]
    level = fit.ci_level if level is None else float(level)
    check_interval_args(level)
    draws = _draw_params(fit)
    tgt, smaller, target_draws, target_spec = _resolve_target(fit, models, target, flops, draws, U)
    if target_draws is None and draws is not None:
        target_draws = tgt.loss
    warnings = []
    left_out = [m.name for m in models if m not in smaller and (m.params, m.tokens) != (tgt.params, tgt.tokens)]
    if left_out:
        warnings.append(f"left out {', '.join(left_out)}: not smaller than the target")
    ncol = fit.n_column
    if ncol == "params_nonembedding":
        # Kaplan et al. 2020 count N without embeddings: a law on that count, evaluated at
        # total counts, would see every model as larger than it was fitted as.
        bare = [m.name for m in smaller + [target_spec] if m is not None and m.params_nonembedding is None]
        if bare:
            warnings.append(f"{fit.name or fit.law}'s N counts non-embedding parameters, and "
                            f"{', '.join(dict.fromkeys(bare))} came without that count: their sizes are used as N "
                            "as given")
    answers = []
    for m in smaller:
        n_law = m.law_params(ncol)
        a = _answer(fit.law_obj, fit.params, draws, m, tgt, target_draws, flops, level, n_law, U)
        loss, src = (m.loss, "measured") if m.loss is not None else (None, None)
        own_flops = m.train_flops_per_token(flops) * m.tokens if m.tokens is not None else None
        if loss is None and m.tokens is not None:
            loss, src = float(fit.law_obj.loss(fit.params, n_law, m.tokens, U)), "law"
        ans = ModelAnswer(name=m.name, params=m.params, tokens=m.tokens, flops=own_flops, loss=loss,
                          loss_source=src, run=m.run, target_loss=tgt.loss, law_params=n_law, **a)
        if curve_fits and m.params in curve_fits:
            ans.curve = _curve_answer(curve_fits[m.params], m, tgt, flops, level)
        answers.append(ans)
        if ans.tokens_to_match is not None:
            warnings += fit.extrapolation_warnings(D=ans.tokens_to_match)
    if tgt.params is not None:
        warnings += fit.extrapolation_warnings(N=tgt.law_params, D=tgt.tokens)
    if tgt.loss_measured is not None and abs(tgt.loss_measured - tgt.loss_law) > 0.02 * tgt.loss_law:
        why = ("the answers match the measured loss, and a law that misses its target by this much may miss the "
               "smaller models' losses too" if tgt.matches_measured else
               "the answers use the law's value (a published law's losses are on its own data and tokenizer; "
               "under a data limit the target is the law's run on the unique tokens)")
        warnings.append(f"the law predicts the target's loss as {num(tgt.loss_law)} but {num(tgt.loss_measured)} "
                        f"was measured; {why}")
    if U is not None:
        warnings += _data_limit_warnings(fit, tgt, U)
    return ExtrapolationResult(fit, tgt, answers, flops=flops, level=level, warnings=list(dict.fromkeys(warnings)),
                               unique_tokens=U)


def _unique_tokens(value) -> float:
    try:
        u = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{value!r} is not a number", field="unique_tokens",
                         fix="give the number of unique tokens, e.g. 1.4e12") from None
    if not math.isfinite(u) or u <= 0:
        raise InputError(f"{value!r} is not a positive number of tokens", field="unique_tokens",
                         fix="give the number of unique tokens, e.g. 1.4e12")
    return u


def with_data_limit(fit: LawFit) -> LawFit:
    """``fit`` as a law of the unique tokens U: itself when it has a U term, else its base
    parameters with Muennighoff et al. 2023's published R_D*, R_N* as the
    ``data_constrained`` law (bootstrap draws kept, the decay constants fixed in each)."""
    law = fit.law_obj
    if law.takes_unique_tokens:
        return fit

    if not hasattr(law, "terms"):
        raise InputError(f"law {law.name!r} has no data-constrained form", field="unique_tokens",
                         fix="use a Chinchilla-form law (chinchilla, gadre2024, hoffmann2022) or data_constrained")
    target = get_law("data_constrained")

    def lift(p):
        return {**dict(zip(BASE_PARAMS, (float(v) for v in law.terms(p)))), **MUENNIGHOFF2023_DECAY}

    samples = None
    draws = fit.sample_params()
    if draws:
        samples = np.array([[lift(p)[k] for k in target.params] for p in draws])
    name = f"{fit.name or fit.law}+decay"
    return LawFit(law=target.name, params=lift(fit.params), ci_level=fit.ci_level, samples=samples,
                  n_points=fit.n_points, n_sizes=fit.n_sizes, n_budgets=fit.n_budgets, data_range=dict(fit.data_range),
                  method=fit.method, source=fit.source if fit.is_published else "fit", name=name,
                  meta={**fit.meta, "data_limit": f"{fit.name or fit.law} with Muennighoff et al. 2023's R_D* = "
                                                  f"{MUENNIGHOFF2023_DECAY['R_D_star']:g}, R_N* = "
                                                  f"{MUENNIGHOFF2023_DECAY['R_N_star']:g}"})


def _data_limit_warnings(fit: LawFit, tgt: Target, U: float) -> list[str]:
    out = []
    if fit.meta.get("data_limit"):
        out.append(f"the decay terms are Muennighoff et al. 2023's, fitted on C4 runs with their own base law; "
                   f"here on {fit.meta['data_limit'].split(' with ')[0]}")
    if tgt.tokens is not None and tgt.tokens > U:
        out.append(f"the target itself repeats data: {si(tgt.tokens)} tokens over {si(U)} unique "
                   f"({tgt.tokens / U:.3g} epochs)")
    return out


def _curve_answer(curve: LawFit, model: ModelSpec, target: Target, convention: str, level: float) -> dict:
    """The same answers from one run's own loss curve L(D) = E + B / D^beta."""
    if curve.law_obj.inputs != ("D",):
        raise InputError(f"per-run curve fits must be a law of tokens alone, L(D), got {curve.law!r}",
                         field="curve_fits", fix="fit each run with analysis.fitting.curves.fit_curve(law='saturating_power')")
    draws = _draw_params(curve)
    a = _answer(curve.law_obj, curve.params, draws, model, target,
                target.loss if draws is not None else None, convention, level, model.params)
    a["law"] = law_json(curve)
    a["n_points"] = curve.n_points
    a["intervals"] = {k: list(v) for k, v in a["intervals"].items()}
    return a



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
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import InputError, TableError
from .laws import get_law
from .result import LawFit, check_interval_args
from .text import format_table, num, sci, si

__all__ = [
    "ModelSpec", "Target", "ModelAnswer", "ExtrapolationResult", "extrapolate",
    "parse_target", "parse_models", "models_from_points", "floor_loss", "tokens_to_match",
    "breakeven_inference_tokens", "PublishedCase", "published_case", "FLOP_CONVENTIONS",
]

#: Largest token count the generic root find searches; beyond it a target counts as unreachable.
D_MAX = 1e40
#: Laws whose (N, D) answers have closed forms below; others go through the root find.
_CHINCHILLA_FAMILY = ("chinchilla", "gadre2024")

FLOP_CONVENTIONS = {
    "6nd": "FLOPs counted as 6ND for training and 2N per inference token (Kaplan et al. 2020, Sec. 2.1)",
    "detailed": ("FLOPs per training token from the data's detailed count (Hoffmann et al. 2022, App. F); "
                 "inference costs one third of that per token (forward pass only)"),
}

SARDANA2023 = ("Sardana and Frankle 2023, 'Beyond Chinchilla-Optimal: Accounting for Inference in "
               "Language Model Scaling Laws'")


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


def _check_law(law: str) -> None:
    inputs = get_law(law).inputs
    if "D" not in inputs or not (set(inputs) <= {"N", "D"}):
        raise InputError(f"law {law!r} is not a loss in tokens, L(N, D) or L(D)", field="law",
                         fix="use chinchilla, gadre2024 or kaplan_nd (or a per-run saturating_power curve)")


def _check_joint_law(law: str) -> None:
    """Extrapolation across sizes needs L(N, D); refuse anything else before any fitting."""
    _check_law(law)
    if "N" not in get_law(law).inputs:
        raise InputError(f"law {law!r} has no model-size term", field="law",
                         fix="use a joint law L(N, D): chinchilla, gadre2024 or kaplan_nd")


def _loss(law: str, params: Mapping[str, Any], N, D) -> np.ndarray:
    """L(N, D) broadcast over parameter arrays (bootstrap draws) and inputs."""
    obj = get_law(law)
    if obj.inputs == ("D",):
        return np.asarray(obj.fn(D, **{p: params[p] for p in obj.params}), dtype=float)
    return np.asarray(obj.fn(N, D, **{p: params[p] for p in obj.params}), dtype=float)


def _chinchilla_params(law: str, params: Mapping[str, Any]):
    if law == "gadre2024":  # Gadre et al. 2024: one exponent eta shared by N and D
        return params["E"], params["A"], params["B"], params["eta"], params["eta"]
    return params["E"], params["A"], params["B"], params["alpha"], params["beta"]


def floor_loss(law: str, params: Mapping[str, Any], N) -> np.ndarray:
    """The loss model N approaches with unlimited data, lim_{D->inf} L(N, D).

    Chinchilla form (Hoffmann et al. 2022, eq. 2): E + A / N^alpha. Kaplan joint law
    (Kaplan et al. 2020, eq. 1.5): (N_c / N)^alpha_N. Saturating curve L(D) = E + B / D^beta: E.
    Other laws: L(N, D_MAX), a numerical stand-in for the limit.
    """
    _check_law(law)
    N = np.asarray(N, dtype=float)
    if law in _CHINCHILLA_FAMILY:
        E, A, _, alpha, _ = _chinchilla_params(law, params)
        return np.asarray(E + A * N ** (-np.asarray(alpha)), dtype=float)
    if law == "kaplan_nd":
        return np.asarray((params["N_c"] / N) ** np.asarray(params["alpha_N"]), dtype=float)
    if law == "saturating_power":
        return np.asarray(params["E"], dtype=float) + 0.0 * N
    return _loss(law, params, N, D_MAX)


def tokens_to_match(law: str, params: Mapping[str, Any], N, loss) -> np.ndarray:
    """Tokens D* with L(N, D*) = loss; +inf where loss is at or below the model's floor.

    Chinchilla form, solved for D (Hoffmann et al. 2022, eq. 2):
    D* = (B / (loss - E - A N^-alpha))^(1/beta). Saturating curve: (B / (loss - E))^(1/beta).
    Other laws: brentq in log D on [1, D_MAX], one solve per element, because L is
    monotone decreasing in D for every admissible law but has no general inverse.
    """
    _check_law(law)
    N = np.asarray(N, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if law in _CHINCHILLA_FAMILY or law == "saturating_power":
        if law == "saturating_power":
            E, B, beta = params["E"], params["B"], params["beta"]
            gap = loss - np.asarray(E, dtype=float) + 0.0 * N
        else:
            E, A, B, alpha, beta = _chinchilla_params(law, params)
            gap = loss - (E + A * N ** (-np.asarray(alpha)))
        gap, B, beta = np.broadcast_arrays(np.asarray(gap, dtype=float), np.asarray(B, dtype=float),
                                           np.asarray(beta, dtype=float))
        out = np.full(gap.shape, np.inf)
        ok = gap > 0
        with np.errstate(over="ignore"):
            out[ok] = (B[ok] / gap[ok]) ** (1.0 / beta[ok])
        return out
    return _tokens_to_match_numeric(law, params, N, loss)


def _tokens_to_match_numeric(law: str, params: Mapping[str, Any], N, loss) -> np.ndarray:
    from scipy.optimize import brentq

    names = get_law(law).params
    arrays = np.broadcast_arrays(N, loss, *[np.asarray(params[p], dtype=float) for p in names])
    shape = arrays[0].shape
    flat = [a.ravel() for a in arrays]
    out = np.empty(flat[0].size)
    lo, hi = 0.0, math.log(D_MAX)
    for i in range(out.size):
        n, target = flat[0][i], flat[1][i]
        p = {name: flat[2 + j][i] for j, name in enumerate(names)}

        def gap(x, n=n, p=p, target=target):
            return float(_loss(law, p, n, math.exp(x))) - target

        g_lo, g_hi = gap(lo), gap(hi)
        if not (np.isfinite(g_lo) and np.isfinite(g_hi)) or g_hi >= 0:
            out[i] = np.inf  # at or below the floor within D_MAX tokens: unreachable
        elif g_lo <= 0:
            out[i] = 1.0
        else:
            out[i] = math.exp(brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12))
    return out.reshape(shape)


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


# ============================================================================ inputs

@dataclass
class ModelSpec:
    """A model to ask about: its size and, when known, its own training run.

    ``flops_per_token`` is the training cost per token (6N under the 6ND convention);
    ``loss`` is a measured loss at ``tokens``, when the model comes from data;
    ``params_nonembedding`` is Kaplan et al.'s non-embedding count, at which a law fitted
    on that count is evaluated.
    """

    params: float
    tokens: float | None = None
    loss: float | None = None
    flops_per_token: float | None = None
    name: str = ""
    run: str | None = None
    params_nonembedding: float | None = None

    def __post_init__(self):
        self.params = _positive(self.params, "params")
        if self.tokens is not None:
            self.tokens = _positive(self.tokens, "tokens")
        if self.params_nonembedding is not None:
            self.params_nonembedding = _positive(self.params_nonembedding, "params_nonembedding")
        if not self.name:
            self.name = si(self.params)

    def law_params(self, n_column: str = "params") -> float:
        """The model's size as a law counts it (:attr:`LawFit.n_column`); the total count
        when the law wants the non-embedding one and the model has none."""
        if n_column == "params_nonembedding" and self.params_nonembedding is not None:
            return self.params_nonembedding
        return self.params

    def train_flops_per_token(self, convention: str) -> float:
        if convention == "6nd":
            return 6.0 * self.params
        if self.flops_per_token is None:
            raise InputError(f"model {self.name} has no detailed FLOPs count", field="flops",
                             fix="use the 6ND convention (--flops 6nd) or give a table with a flops column")
        return float(self.flops_per_token)


def _positive(x, what: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InputError(f"{x!r} is not a number", field=what, fix="give a positive number such as 7e9") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{x!r} is not a positive number", field=what, fix="give a positive number such as 7e9")
    return v


def parse_models(text: str) -> list[ModelSpec]:
    """``"7e9,13e9:1e12"`` -> models; each entry is PARAMS or PARAMS:TOKENS."""
    out = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        n, _, d = part.partition(":")
        out.append(ModelSpec(_positive(n, "models"), _positive(d, "models") if d else None))
    if not out:
        raise InputError("no models given", field="models", fix="list sizes, e.g. --models 7e9,13e9:1e12")
    return out


def parse_target(text) -> str | float | tuple[float, float]:
    """``largest`` | a loss (``2.05``) | ``N:D`` (``65e9:1.4e12``)."""
    if isinstance(text, (tuple, list)):
        return (_positive(text[0], "target"), _positive(text[1], "target"))
    if isinstance(text, (int, float)):
        return _positive(text, "target")
    s = str(text).strip()
    if s == "largest":
        return s
    if ":" in s:
        n, _, d = s.partition(":")
        return (_positive(n, "target"), _positive(d, "target"))
    try:
        return _positive(s, "target")
    except InputError:
        raise InputError(f"cannot read {text!r}", field="target",
                         fix="use largest, a loss such as 2.05, or PARAMS:TOKENS such as 65e9:1.4e12") from None


def models_from_points(points, flops: str = "6nd") -> list[ModelSpec]:
    """One :class:`ModelSpec` per distinct size in a points table (columns params, tokens,
    loss, optionally flops and run): its largest token budget and the loss measured there.
    """
    import pandas as pd

    if not isinstance(points, pd.DataFrame):
        raise TableError("expected a table of points", field="points", fix="load it with analysis.data.load_points")
    missing = [c for c in ("params", "tokens", "loss") if c not in points.columns]
    if missing:
        raise TableError(f"missing column(s) {', '.join(missing)}", field="points",
                         fix="give a table with params, tokens and loss columns")
    if len(points) == 0:
        raise TableError("the table has no rows", field="points", fix="point at a sweep with finished runs")
    out = []
    for n, group in points.groupby("params", sort=True):
        top = group[group["tokens"] == group["tokens"].max()]
        fpt = None
        if flops == "detailed":
            if "flops" not in top.columns or not np.all(np.isfinite(top["flops"].astype(float))):
                raise TableError("no detailed flops column", field="flops",
                                 fix="use --flops 6nd, or give a table with a flops column")
            fpt = float((top["flops"] / top["tokens"]).mean())
        run = str(top["run"].iloc[0]) if "run" in top.columns and top["run"].notna().any() else None
        ne = None
        if "params_nonembedding" in group.columns and np.all(np.isfinite(group["params_nonembedding"].astype(float))):
            ne = float(group["params_nonembedding"].astype(float).mean())
        out.append(ModelSpec(float(n), float(top["tokens"].iloc[0]), float(top["loss"].mean()), fpt,
                             name=si(float(n)), run=run, params_nonembedding=ne))
    return out


@dataclass
class Target:
    """The model (or loss) the smaller models are measured against."""

    loss: float
    params: float | None = None
    tokens: float | None = None
    flops: float | None = None
    flops_per_token: float | None = None
    loss_measured: float | None = None
    loss_interval: tuple[float, float] | None = None
    name: str = ""
    how: str = ""
    #: the size at which the law was evaluated (the non-embedding count for Kaplan fits)
    law_params: float | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params, "law_params": self.law_params, "tokens": self.tokens,
                "flops": self.flops, "loss": self.loss, "loss_measured": self.loss_measured,
                "loss_interval": list(self.loss_interval) if self.loss_interval else None, "how": self.how}


# ============================================================================ answers

#: Quantities computed per model, in output order; all get intervals when draws exist.
QUANTITIES = ("loss_at_target_compute", "tokens_to_match", "flops_to_match", "compute_multiple",
              "compute_multiple_own", "breakeven_inference_tokens")


@dataclass
class ModelAnswer:
    """The answers for one smaller model under one law (see the module docstring)."""

    name: str
    params: float
    tokens: float | None
    flops: float | None
    loss: float | None
    loss_source: str | None
    floor: float
    tokens_at_target_compute: float | None
    loss_at_target_compute: float | None
    tokens_to_match: float | None
    flops_to_match: float | None
    compute_multiple: float | None
    compute_multiple_own: float | None
    breakeven_inference_tokens: float | None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    unreachable_fraction: float | None = None
    p_wins_at_equal_compute: float | None = None
    run: str | None = None
    curve: dict | None = None
    #: the target loss these answers were computed against
    target_loss: float | None = None
    #: the size at which the law was evaluated (the non-embedding count for Kaplan fits)
    law_params: float | None = None

    @property
    def reachable(self) -> bool:
        return self.tokens_to_match is not None

    @property
    def wins_at_equal_compute(self) -> bool | None:
        if self.loss_at_target_compute is None or self.target_loss is None:
            return None
        return bool(self.loss_at_target_compute < self.target_loss)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "name", "params", "law_params", "tokens", "flops", "loss", "loss_source", "floor", "reachable",
            "tokens_at_target_compute", "loss_at_target_compute", "wins_at_equal_compute",
            "tokens_to_match", "flops_to_match", "compute_multiple", "compute_multiple_own",
            "breakeven_inference_tokens")}
        d["intervals"] = {k: [lo, hi] for k, (lo, hi) in self.intervals.items()}
        d["unreachable_fraction"] = self.unreachable_fraction
        d["p_wins_at_equal_compute"] = self.p_wins_at_equal_compute
        if self.run is not None:
            d["run"] = self.run
        if self.curve is not None:
            d["curve"] = self.curve
        return d


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


def _compute(law: str, params: Mapping[str, Any], model: ModelSpec, target: Target, convention: str,
             target_loss, N: float) -> dict[str, np.ndarray]:
    """Every quantity for one model under one parameter set (floats or draw arrays), the
    law evaluated at size ``N`` (the model's size as the law counts it); FLOPs follow the
    convention, the same for every law."""
    f_n = model.train_flops_per_token(convention)
    out: dict[str, np.ndarray] = {}
    out["floor"] = floor_loss(law, params, N)
    d_star = tokens_to_match(law, params, N, target_loss)
    out["tokens_to_match"] = d_star
    out["flops_to_match"] = f_n * d_star
    own = f_n * model.tokens if model.tokens is not None else None
    out["compute_multiple_own"] = f_n * d_star / own if own else np.full(np.shape(d_star), np.nan)
    if target.flops is not None:
        d_c = target.flops / f_n
        out["tokens_at_target_compute"] = np.asarray(d_c)
        out["loss_at_target_compute"] = _loss(law, params, N, d_c)
        out["compute_multiple"] = f_n * d_star / target.flops
        # Inference costs the forward pass, one third of a training token (2N under 6ND).
        out["breakeven_inference_tokens"] = breakeven_inference_tokens(
            f_n * d_star, target.flops, f_n / 3.0, target.flops_per_token / 3.0)
    else:
        nan = np.full(np.shape(d_star), np.nan)
        out.update(tokens_at_target_compute=np.asarray(np.nan), loss_at_target_compute=nan,
                   compute_multiple=nan, breakeven_inference_tokens=nan)
    return out


def _answer(law: str, point: Mapping[str, float], draws: Mapping[str, np.ndarray] | None, model: ModelSpec,
            target: Target, target_draws, convention: str, level: float, N: float) -> dict:
    """Point answers plus intervals over the draws, as plain floats (None = not defined)."""
    best = _compute(law, point, model, target, convention, target.loss, N)
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
        many = _compute(law, draws, model, target, convention, target_draws, N)
        res["unreachable_fraction"] = float(np.mean(~np.isfinite(many["tokens_to_match"])))
        for q in QUANTITIES:
            vals = np.broadcast_to(many[q], np.shape(many["tokens_to_match"]))
            if np.all(np.isnan(vals)):
                continue
            res["intervals"][q] = _interval(vals, level)
        if target.flops is not None:
            res["p_wins_at_equal_compute"] = float(np.mean(many["loss_at_target_compute"] < target_draws))
    return res


# ============================================================================ result

@dataclass
class ExtrapolationResult:
    """Answers for every smaller model against one target under one law."""

    law: LawFit
    target: Target
    models: list[ModelAnswer]
    flops: str = "6nd"
    level: float = 0.90
    warnings: list[str] = field(default_factory=list)

    @property
    def n_draws(self) -> int:
        return 0 if self.law.samples is None else int(len(self.law.samples))

    def to_dict(self) -> dict:
        """JSON-ready: ``target`` (params, tokens, flops, loss) and ``models`` (see the CLI docs)."""
        law = self.law
        return {
            "law": {"name": law.name or law.law, "law": law.law, "source": law.source,
                    "citation": law.law_obj.citation, "params": dict(law.params),
                    "bootstrap_draws": self.n_draws},
            "flop_convention": FLOP_CONVENTIONS[self.flops],
            "level": self.level if self.n_draws else None,
            "target": self.target.to_dict(),
            "models": [m.to_dict() for m in self.models],
            "warnings": list(self.warnings),
        }

    def to_frame(self):
        """One row per model; interval ends as ``<quantity>_low`` / ``<quantity>_high``."""
        import pandas as pd

        rows = []
        for m in self.models:
            d = m.to_dict()
            ivs = d.pop("intervals")
            curve = d.pop("curve", None)
            for q, (lo, hi) in ivs.items():
                d[f"{q}_low"], d[f"{q}_high"] = lo, hi
            if curve:
                for k in ("tokens_to_match", "loss_at_target_compute", "compute_multiple", "floor"):
                    d[f"curve_{k}"] = curve.get(k)
            rows.append(d)
        return pd.DataFrame(rows)

    def header(self) -> str:
        law, t = self.law, self.target
        name = law.name or law.law
        lines = [f"Law: {name} ({law.law}) - {law.source if law.is_published else law.law_obj.citation}"]
        if self.n_draws:
            lines.append(f"Intervals: {100 * self.level:g}% percentile over {self.n_draws} bootstrap draws")
        lines.append(FLOP_CONVENTIONS[self.flops] + ".")
        if law.n_column == "params_nonembedding":
            lines.append("N in the law: non-embedding parameters, as the law counts them (Kaplan et al. 2020); "
                         "params and FLOPs count all parameters.")
        if t.params is not None:
            lines.append(f"Target: {t.name or si(t.params)} ({si(t.params)} params, {si(t.tokens)} tokens, "
                         f"{sci(t.flops)} FLOPs), loss {_fmt_loss(t.loss, t.loss_interval)} "
                         f"predicted by the law" + (f"; measured {num(t.loss_measured)}"
                                                   if t.loss_measured is not None else ""))
        else:
            lines.append(f"Target: loss {num(t.loss)} ({t.how})")
        return "\n".join(lines)

    def display_rows(self) -> list[dict[str, str]]:
        """The answers formatted for people, one dict of column -> text per model."""
        rows = []
        for m in self.models:
            iv = m.intervals
            never = f"never (floor {m.floor:.4g})"
            row = {
                "model": m.name, "params": si(m.params), "tokens": si(m.tokens),
                "own loss": num(m.loss) + ("" if m.loss_source != "law" else "*"),
                "loss @ target C": _with_iv(m.loss_at_target_compute, iv.get("loss_at_target_compute"), num),
                "wins @ target C": _wins(m),
                "tokens to match": (_with_iv(m.tokens_to_match, iv.get("tokens_to_match"), _count) if m.reachable
                                    else never),
                "FLOPs to match": sci(m.flops_to_match) if m.reachable else "-",
                "x target C": _with_iv(m.compute_multiple, iv.get("compute_multiple"), _times),
                "break-even inference tokens": _with_iv(m.breakeven_inference_tokens,
                                                        iv.get("breakeven_inference_tokens"), _count),
            }
            frac = m.unreachable_fraction
            if frac is not None and m.reachable and frac > 0:
                row["tokens to match"] += f" ({100 * frac:.0f}% of draws: never)"
            elif frac is not None and not m.reachable and frac < 1:
                row["tokens to match"] += f" ({100 * (1 - frac):.0f}% of draws reach it)"
            if m.curve is not None:
                c = m.curve
                row["own curve: tokens to match"] = (_count(c["tokens_to_match"]) if c.get("tokens_to_match")
                                                     else f"never (floor {c['floor']:.4g})")
            rows.append(row)
        return rows

    def summary(self) -> list[str]:
        """One line per question, in words."""
        t, out = self.target, []
        if t.flops is not None and self.models:
            cands = [(m.loss_at_target_compute, m.name) for m in self.models if m.loss_at_target_compute is not None]
            cands.append((t.loss, t.name))
            best = min(cands)
            out.append(f"At {t.name}'s compute ({sci(t.flops)} FLOPs) the lowest loss is {best[1]}'s ({num(best[0])}).")
        reach = [m for m in self.models if m.reachable]
        never = [m for m in self.models if not m.reachable]
        costs = [(m.flops_to_match, m.name, m.tokens_to_match) for m in reach]
        if t.flops is not None:
            costs.append((t.flops, t.name, t.tokens))
        if costs:
            flops, name, tokens = min(costs)
            out.append(f"Cheapest to train to the target's loss: {name} ({sci(flops)} FLOPs, {_count(tokens)} tokens).")
        if never:
            out.append("Never reaches the target's loss: " + ", ".join(f"{m.name} (floor {m.floor:.4g})" for m in never) + ".")
        return out

    def footnotes(self) -> list[str]:
        notes = []
        if any(m.loss_source == "law" for m in self.models):
            notes.append("* own loss predicted by the law at the model's own tokens (not measured)")
        if any(m.breakeven_inference_tokens == 0 for m in self.models):
            notes.append("break-even 0: the model is already cheaper to train to the target's loss, "
                         "so it is the cheaper choice from the first served token")
        return notes

    def table(self, header: bool = True) -> str:
        """The answers as an aligned text table (intervals in brackets)."""
        rows = self.display_rows()
        columns = list(dict.fromkeys(k for r in rows for k in r))
        text = (format_table(rows, columns, formats={k: str for k in columns}) if rows
                else "(no model smaller than the target)")
        parts = [self.header(), "", text] if header else [text]
        parts += self.footnotes()
        if header and self.models:
            parts += [""] + self.summary()
        if self.warnings:
            parts += ["", "Warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.table()


def _wins(m: ModelAnswer) -> str:
    w = m.wins_at_equal_compute
    if w is None:
        return "-"
    s = "yes" if w else "no"
    return s + (f" (p={m.p_wins_at_equal_compute:.2f})" if m.p_wins_at_equal_compute is not None else "")


def _fmt_loss(x, iv) -> str:
    return num(x) + (f" [{num(iv[0])}, {num(iv[1])}]" if iv else "")


def _count(x) -> str:
    """Token counts: SI suffixes up to trillions, scientific notation beyond."""
    return "-" if x is None else (si(x) if abs(x) < 1e15 else sci(x))


def _times(x) -> str:
    return "-" if x is None else f"{x:.3g}x"


def _with_iv(x, iv, fmt) -> str:
    if x is None:
        return "-"
    s = fmt(x)
    if iv is not None:
        lo, hi = iv
        s += f" [{fmt(lo) if math.isfinite(lo) else '-'}, {fmt(hi) if math.isfinite(hi) else 'never'}]"
    return s


# ============================================================================ entry point

def _resolve_target(fit: LawFit, models: list[ModelSpec], target, convention: str,
                    draws) -> tuple[Target, list[ModelSpec], Any, ModelSpec | None]:
    target = parse_target(target) if not isinstance(target, ModelSpec) else target
    law = fit.law
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
    lt = float(_loss(law, fit.params, n_t, spec.tokens))
    lt_draws = _loss(law, draws, n_t, spec.tokens) if draws is not None else None
    t = Target(loss=lt, params=spec.params, tokens=spec.tokens, flops=f_t * spec.tokens, flops_per_token=f_t,
               loss_measured=spec.loss, name=spec.name, how=how, law_params=n_t)
    if lt_draws is not None:
        t.loss_interval = _interval(lt_draws, fit.ci_level)
    smaller = [m for m in models if m.params < spec.params]
    return t, smaller, lt_draws, spec


def extrapolate(fit: LawFit, models: Sequence[ModelSpec] | Iterable[float] | str, target="largest",
                flops: str = "6nd", level: float | None = None,
                curve_fits: Mapping[float, LawFit] | None = None) -> ExtrapolationResult:
    """Answer the compute-matched questions for every model smaller than ``target``.

    ``fit``: any :class:`LawFit` whose law is L(N, D) (chinchilla, gadre2024, kaplan_nd),
    fitted or published; its bootstrap ``samples`` give intervals. ``models``: specs,
    sizes, or a ``"7e9,13e9:1e12"`` string. ``target``: ``"largest"`` (the largest model
    with a token count), a loss, ``(N, D)``/``"N:D"``, or a :class:`ModelSpec`.
    ``flops``: ``"6nd"`` or ``"detailed"`` (models need ``flops_per_token``).
    ``curve_fits``: params -> that model's own ``saturating_power`` curve fit; its answers are
    attached to the model as ``curve``, beside the joint law's.
    """
    if not isinstance(fit, LawFit):
        raise InputError(f"expected a LawFit, got {type(fit).__name__}", field="law",
                         fix="pass the result of analysis.fit.fit_law or analysis.published.published_law")
    _check_joint_law(fit.law)
    if flops not in FLOP_CONVENTIONS:
        raise InputError(f"unknown FLOPs convention {flops!r}", field="flops", fix="use 6nd or detailed")
    if isinstance(models, str):
        models = parse_models(models)
    models = [m if isinstance(m, ModelSpec) else ModelSpec(m) for m in models]
    level = fit.ci_level if level is None else float(level)
    check_interval_args(level)
    draws = _draw_params(fit)
    tgt, smaller, target_draws, target_spec = _resolve_target(fit, models, target, flops, draws)
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
        a = _answer(fit.law, fit.params, draws, m, tgt, target_draws, flops, level, n_law)
        loss, src = (m.loss, "measured") if m.loss is not None else (None, None)
        own_flops = m.train_flops_per_token(flops) * m.tokens if m.tokens is not None else None
        if loss is None and m.tokens is not None:
            loss, src = float(_loss(fit.law, fit.params, n_law, m.tokens)), "law"
        ans = ModelAnswer(name=m.name, params=m.params, tokens=m.tokens, flops=own_flops, loss=loss,
                          loss_source=src, run=m.run, target_loss=tgt.loss, law_params=n_law, **a)
        if curve_fits and m.params in curve_fits:
            ans.curve = _curve_answer(curve_fits[m.params], m, tgt, flops, level)
        answers.append(ans)
        if ans.tokens_to_match is not None:
            warnings += fit.extrapolation_warnings(D=ans.tokens_to_match)
    if tgt.params is not None:
        warnings += fit.extrapolation_warnings(N=tgt.law_params, D=tgt.tokens)
    if tgt.loss_measured is not None and abs(tgt.loss_measured - tgt.loss) > 0.02 * tgt.loss:
        warnings.append(f"the law predicts the target's loss as {num(tgt.loss)} but {num(tgt.loss_measured)} "
                        "was measured; answers use the law's value, so read them as the law's")
    return ExtrapolationResult(fit, tgt, answers, flops=flops, level=level, warnings=list(dict.fromkeys(warnings)))


def _curve_answer(curve: LawFit, model: ModelSpec, target: Target, convention: str, level: float) -> dict:
    """The same answers from one run's own loss curve L(D) = E + B / D^beta."""
    if curve.law != "saturating_power":
        raise InputError(f"per-run curve fits must be saturating_power, got {curve.law!r}", field="curve_fits")
    draws = _draw_params(curve)
    a = _answer("saturating_power", curve.params, draws, model, target,
                target.loss if draws is not None else None, convention, level, model.params)
    a["law"] = "saturating_power"
    a["params"] = dict(curve.params)
    a["n_points"] = curve.n_points
    a["intervals"] = {k: list(v) for k, v in a["intervals"].items()}
    return a


# ============================================================================ published case

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
    return (f"losses are {law.name}'s predictions on its own training data and tokenizer "
            "(MassiveText for the Chinchilla laws), not LLaMA's losses; read them for relative answers")


def published_case(family: str = "llama", laws: Sequence[str] = ("hoffmann2022", "besiroglu2024")) -> PublishedCase:
    """The compute-matched questions for a published family, answered with published laws.

    For LLaMA (Touvron et al. 2023, Table 15) the target is LLaMA-65B; each smaller model
    gets its GPU-hour and 6ND multiples to the 65B's compute, then every law in ``laws``
    answers the extrapolation questions. No fitting happens, so this is instant.
    """
    from .published import PUBLISHED_MODELS, published_law

    try:
        family_models = PUBLISHED_MODELS[family]
    except KeyError:
        raise InputError(f"unknown published family {family!r}", field="published",
                         fix="use one of " + ", ".join(PUBLISHED_MODELS)) from None
    target = max(family_models, key=lambda m: m.params)
    specs = [ModelSpec(m.params, m.tokens, name=m.name) for m in family_models]
    tspec = next(s for s in specs if s.params == target.params)
    results = [extrapolate(published_law(name), specs, target=tspec) for name in laws]
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


def _law_from(law) -> tuple[LawFit | None, str]:
    """A ready LawFit (object, published name or saved JSON), else the name of a law to fit."""
    from .published import PUBLISHED_LAWS, published_law

    if isinstance(law, LawFit):
        return law, ""
    if law in PUBLISHED_LAWS:
        return published_law(law), ""
    if isinstance(law, str) and law.endswith(".json"):
        return LawFit.load(law), ""
    return None, str(law)


def measured_curves(source, points) -> dict:
    """Each run's measured loss curve, run -> DataFrame(params, step, tokens, loss[, lr]).

    From a table with ``run`` and ``step`` columns, the rows of each run; from run
    records, each run's metrics.jsonl read by :func:`analysis.curves.read_curve` with its
    ``val_loss`` (every logged row is kept, so the learning-rate schedule is complete;
    ``loss`` is NaN where no validation loss was measured). Runs with fewer than three
    measured losses give no curve.
    """
    from pathlib import Path

    from .errors import ToolkitError

    out: dict = {}
    if points is not None and {"run", "step"} <= set(points.columns):
        for run, g in points.groupby("run"):
            if len(g) >= 3:
                out[str(run)] = g[["params", "tokens", "loss", "step"]].sort_values("tokens").reset_index(drop=True)
        return out
    if not isinstance(source, (str, Path)) or not Path(source).is_dir():
        return out
    try:
        from .curves import read_curve
    except ImportError:
        return out
    from .records import find_run_dirs, read_summary

    sizes = {}
    if points is not None and "run" in points.columns:
        sizes = dict(zip(points["run"].astype(str), points["params"].astype(float)))
    for run_dir in find_run_dirs(source):
        summary = read_summary(run_dir)
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


def fit_run_curves(curves: Mapping[str, Any], models: Sequence[ModelSpec]) -> tuple[dict, list[str]]:
    """Fit ``saturating_power`` to the curve of each model's own run (the run at its largest
    budget, else the longest curve of that size); returns params -> LawFit and notes."""
    from .errors import ToolkitError

    try:
        from .curves import fit_curve
    except ImportError:  # an install without the curve laws still answers from the joint law
        return {}, ["per-run curve answers need analysis.curves, which is not available"]
    fits, notes = {}, []
    for m in models:
        run = m.run if m.run in curves else None
        if run is None:
            same = [(len(c), r) for r, c in curves.items() if float(c["params"].iloc[0]) == m.params]
            run = max(same)[1] if same else None
        if run is None:
            continue
        try:
            fits[m.params] = fit_curve(curves[run], law="saturating_power")
        except ToolkitError as e:
            notes.append(f"no own-curve answer for {m.name} (run {run}): {e}")
    return fits, notes


def run_study(source=None, law="chinchilla", target="largest", models=None, bootstrap: int = 0, seed: int = 0,
              n_jobs: int | None = None, level: float = 0.90, flops: str = "6nd", curves: bool = True,
              columns=None, policy: str = "raise", resample: str = "auto") -> Study:
    """Load points, fit (or take) a law, and answer the compute-matched questions.

    ``source``: a sweep/run directory, a CSV/Parquet table or a DataFrame (see
    :func:`analysis.data.load_points`), or None when ``models`` and a ready law are given.
    ``law``: a law to fit on the points (``chinchilla``, ``gadre2024``, ``kaplan_nd``), a
    published law's name (``hoffmann2022``...), a saved fit (``fit.json``) or a LawFit.
    ``models``: sizes to ask about (default: every size in the data). With ``curves``, each
    model's own measured loss curve is fitted too and answered beside the joint law.
    ``resample``: what the bootstrap draws, as :func:`analysis.fit.fit_law` takes it.
    """
    ready, to_fit = _law_from(law)
    points, notes = None, []
    if source is not None:
        from .data import load_points, table_notes

        points = load_points(source, columns=columns, policy=policy)
        notes += table_notes(points)
    if ready is None:
        if points is None:
            raise InputError(f"law {to_fit!r} has to be fitted, and no data were given", field="law",
                             fix="give a sweep directory or table, or a published law such as hoffmann2022")
        from .fit import fit_law

        _check_joint_law(to_fit)
        fit = fit_law(points, law=to_fit, bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, level=level,
                      resample=resample)
    else:
        fit = ready
    if models is not None:
        specs = parse_models(models) if isinstance(models, str) else [
            m if isinstance(m, ModelSpec) else ModelSpec(m) for m in models]
    elif points is not None:
        specs = models_from_points(points, flops=flops)
    else:
        raise InputError("no models to ask about", field="models",
                         fix="give a sweep directory or table, or --models such as 7e9,13e9")
    run_curves, curve_fits = {}, {}
    if curves and points is not None:
        run_curves = measured_curves(source, points)
        if run_curves:
            curve_fits, more = fit_run_curves(run_curves, specs)
            notes += more
    result = extrapolate(fit, specs, target=target, flops=flops, level=level, curve_fits=curve_fits)
    if ready is not None and points is not None and fit.is_published:
        result.warnings.append(f"{fit.name} is a published law fitted on other data; its losses are not "
                               "on this data's scale, so compare its answers with care")
    return Study(points=points, fit=fit, result=result, curves=run_curves, curve_fits=curve_fits, notes=notes,
                 source="" if source is None else (points.attrs.get("source", "") if points is not None else ""))

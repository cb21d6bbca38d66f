"""The headline answer, backtested: how many tokens a smaller model needs to match a larger
model's loss, predicted from a fit that never saw the long runs that measure it.

A table with over-trained runs (Gadre et al. 2024: every small size at 5 to 640 tokens per
parameter) answers the question twice. The fit sees each size's runs only up to
``max_tpp`` tokens per parameter; for each pair (small, large) the target is the large
model's run nearest ``target_tpp``, and the measured answer is where the small model's own
runs, all of them, cross that run's measured loss (log-linear in tokens between its
bracketing runs). The predicted answer is :func:`analysis.extrapolation.study.run_study`'s, the same
pipeline as ``scaling extrapolate``, with its interval: the tokens at which the law says the
small model reaches that same measured loss. In a table with unique tokens the target and the
crossings are the runs on fresh data (a run that repeated its data answers another question).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..common.errors import InputError
from ..common.text import format_table, si
from ..data.loading import load_points
from ..data.points import log_key
from ..selection.checked import fit_checked
from .answers import NEVER, fitted_near
from .specs import ModelSpec, fresh_runs
from .study import measured_crossing, run_study

__all__ = ["PairCheck", "TokensBacktest", "backtest_tokens_to_match"]


@dataclass
class PairCheck:
    small: float
    large: float
    target_tokens: float
    target_loss: float
    measured_tokens: float | None
    predicted_tokens: float | None
    low: float | None = None
    high: float | None = None
    never_fraction: float | None = None
    note: str = ""
    #: the law says the small model never reaches the target (its floor lies above it)
    never: bool = False
    #: how far the predicted answer extrapolates (``ModelAnswer.distance``), or None without one
    distance: dict | None = None

    @property
    def ratio(self) -> float | None:
        if self.measured_tokens is None or self.predicted_tokens is None:
            return None
        return self.predicted_tokens / self.measured_tokens

    @property
    def inside(self) -> bool | None:
        if self.measured_tokens is None or self.low is None:
            return None
        high = math.inf if self.high is None else self.high
        return bool(self.low <= self.measured_tokens <= high)

    def to_dict(self) -> dict:
        """JSON-ready; "never" written as such (docs/json.md): the prediction when the law never
        reaches the target, the interval's upper end when no bound was found."""
        d = {**asdict(self), "ratio": self.ratio, "inside": self.inside}
        if self.never:
            d["predicted_tokens"] = NEVER
        if self.low is not None and self.high is None:
            d["high"] = NEVER
        return d


@dataclass
class TokensBacktest:
    pairs: list[PairCheck]
    law: str
    reason: str
    max_tpp: float
    target_tpp: float
    level: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        ratios = [p.ratio for p in self.pairs if p.ratio is not None]
        inside = [p.inside for p in self.pairs if p.inside is not None]
        return {"pairs": len(self.pairs), "measured": len(ratios),
                "median_ratio": float(np.median(ratios)) if ratios else None,
                "ratio_range": [float(min(ratios)), float(max(ratios))] if ratios else None,
                "inside": int(sum(inside)), "with_interval": len(inside)}

    def to_dict(self) -> dict:
        return {"law_name": self.law, "reason": self.reason, "max_tokens_per_param": self.max_tpp,
                "target_tokens_per_param": self.target_tpp, "level": self.level,
                "pairs": [p.to_dict() for p in self.pairs], "summary": self.summary(), "notes": list(self.notes)}

    def table(self) -> str:
        rows = [{"small": si(p.small), "large": si(p.large), "target loss": f"{p.target_loss:.4g}",
                 "measured tokens": si(p.measured_tokens) if p.measured_tokens else "not reached",
                 "predicted": _tokens(p.predicted_tokens),
                 f"{100 * self.level:g}% interval": (f"[{_tokens(p.low)}, {_tokens(p.high)}]"
                                                    if p.low is not None else "-"),
                 "predicted/measured": f"{p.ratio:.2f}x" if p.ratio is not None else "-",
                 "tokens/param (x fitted)": _far(p.distance),
                 "inside": {True: "yes", False: "NO", None: "-"}[p.inside]} for p in self.pairs]
        s = self.summary()
        head = [self.reason,
                f"[[Tokens to match, backtested]] the fit saw runs up to {self.max_tpp:g} tokens per parameter; "
                f"targets: each larger size's run nearest {self.target_tpp:g}, at its measured loss; measured: where "
                "the smaller model's own runs cross it; predicted: where the law says the smaller model reaches it"]
        body = format_table(rows, formats={k: str for k in rows[0]}) if rows else "(no pair)"
        tail = []
        if s["measured"]:
            tail.append(f"median predicted/measured {s['median_ratio']:.2f}x (range {s['ratio_range'][0]:.2f}x to "
                        f"{s['ratio_range'][1]:.2f}x over {s['measured']} measured pairs); {s['inside']} of "
                        f"{s['with_interval']} measured answers inside the {100 * self.level:g}% interval")
        return "\n".join(head + ["    " + ln for ln in body.splitlines()] + ["    " + t for t in tail + self.notes])


def _far(d: dict | None) -> str:
    """A predicted answer's tokens per parameter and how many times the most fitted near its size."""
    if not d:
        return "-"
    ref = fitted_near(d)
    return f"{d['tokens_per_param']:.3g}" + (f" ({d['tokens_per_param'] / ref:.2g}x)" if ref else "")


def _tokens(v) -> str:
    return "never" if v is None or not math.isfinite(v) else si(v)


def backtest_tokens_to_match(points: pd.DataFrame, max_tpp: float = 40.0, target_tpp: float = 20.0,
                             law: str = "auto", bootstrap: int = 0, level: float = 0.90, seed: int = 0,
                             allow_repeats: bool = False, min_tpp: float | None = None,
                             candidates: Sequence[str] | None = None) -> TokensBacktest:
    """Predict tokens-to-match from runs up to ``max_tpp`` tokens per parameter and check
    each answer against the smaller model's longer runs (module docstring). ``min_tpp``: the
    fit's short-run threshold and ``candidates`` the laws ``auto`` may choose from
    (:func:`analysis.selection.checked.fit_checked`; None: the policy's)."""
    if not (max_tpp > 0 and target_tpp > 0):
        raise InputError(f"max_tpp={max_tpp}, target_tpp={target_tpp}", field="--max-tpp",
                         fix="give positive tokens-per-parameter values, e.g. --max-tpp 40 --target-tpp 20")
    df = points.reset_index(drop=True)
    tpp = df["tokens"] / df["params"]
    train = df[tpp <= max_tpp * (1 + 1e-6)].reset_index(drop=True)
    keys = log_key(df["params"])
    sizes = sorted(np.unique(keys))
    real = {k: float(df["params"][keys == k].iloc[0]) for k in sizes}
    # the measurements are runs on fresh data: in a table with unique tokens, a run that
    # repeated its data answers another question (analysis.extrapolation.specs.fresh_runs)
    fresh = df.index.isin(fresh_runs(df).index)
    longer = [k for k in sizes if (fresh & (keys == k) & (tpp > max_tpp * (1 + 1e-6))).any()]
    if not longer:
        raise InputError(f"no run trains beyond {max_tpp:g} tokens per parameter, so nothing measures the answer",
                         field="--max-tpp", fix="lower --max-tpp below the longest runs' tokens per parameter")

    pairs, notes = [], []
    # one fit of the runs it may see answers every pair: the targets differ, the table does not
    checked = fit_checked(load_points(train), law, candidates=candidates, allow_repeats=allow_repeats,
                          bootstrap=bootstrap, seed=seed, level=level, progress=False, min_tpp=min_tpp)
    law_name = checked.fit.law
    reason = checked.choice.reason if checked.choice else f"law: {law_name}"
    if checked.short_runs.get("note"):
        notes.append(checked.short_runs["note"])
    for lk in sizes:
        at = df[fresh & (keys == lk)]
        if at.empty:
            continue
        j = int(np.argmin(np.abs(np.log(at["tokens"] / at["params"] / target_tpp))))
        target = at.iloc[j]
        smaller = [sk for sk in longer if sk < lk]
        if not smaller:
            continue
        # the target run is in the fit: its measured loss is the one both answers match
        spec = ModelSpec(float(target["params"]), float(target["tokens"]), loss=float(target["loss"]))
        study = run_study(train, target=spec,
                          models=",".join(f"{real[sk]:.10g}" for sk in smaller), curves=False, level=level,
                          allow_repeats=allow_repeats, checked=checked)
        answers = {log_key(pd.Series([m.params]))[0]: m for m in study.result.models}
        for sk in smaller:
            m = answers.get(sk)
            measured = measured_crossing(df[fresh & (keys == sk)], float(target["loss"]))
            iv = m.intervals.get("tokens_to_match") if m is not None else None
            lo, hi = (iv if iv else (None, None))
            pairs.append(PairCheck(real[sk], real[lk], float(target["tokens"]), float(target["loss"]), measured,
                                   m.tokens_to_match if m is not None else None,
                                   lo, (hi if hi is not None and math.isfinite(hi) else None),
                                   m.unreachable_fraction if m is not None else None,
                                   never=m is not None and not m.reachable,
                                   distance=m.distance if m is not None else None))
    return TokensBacktest(pairs, law_name or law, reason, max_tpp, target_tpp, level, notes)

"""What an extrapolation is asked about: the models (:class:`ModelSpec`), the target
(:class:`Target`), and the parsers that read them from command-line text or a points table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..common.errors import InputError, TableError
from ..common.text import si

__all__ = ["ModelSpec", "Target", "parse_models", "parse_target", "named_target", "models_from_points", "model_names",
           "fresh_runs", "measured_loss"]


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


def parse_models(text: str, known: "Sequence[ModelSpec]" = ()) -> list[ModelSpec]:
    """``"7e9,13e9:1e12"`` -> models; each entry is PARAMS or PARAMS:TOKENS, or the name of
    one of the ``known`` models (the data's, named by their run records' preset), which
    stands for that model as the data has it (``nano``, or ``nano:2e6`` at another budget)."""
    by_name = {m.name: m for m in known if m.name != si(m.params)}
    out = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        n, _, d = part.partition(":")
        if n in by_name:
            m = by_name[n]
            out.append(m if not d else ModelSpec(m.params, _positive(d, "models"), name=m.name,
                                                 flops_per_token=m.flops_per_token,
                                                 params_nonembedding=m.params_nonembedding))
            continue
        try:
            out.append(ModelSpec(_positive(n, "models"), _positive(d, "models") if d else None))
        except InputError:
            fix = ("give PARAMS or PARAMS:TOKENS such as 7e9 or 7e9:1e12, or a model of the data by name: "
                   + ", ".join(by_name)) if by_name else (
                   "give PARAMS or PARAMS:TOKENS such as 7e9 or 7e9:1e12 (a model is named, e.g. nano, only "
                   "with a sweep whose run records name its preset)")
            raise InputError(f"cannot read {part!r}", field="models", fix=fix) from None
    if not out:
        raise InputError("no models given", field="models", fix="list sizes, e.g. --models 7e9,13e9:1e12")
    return out


def model_names(points) -> dict[float, str]:
    """Model size -> name, from a points table's ``model`` column (the preset each run
    record names), for the sizes that have exactly one name."""
    if points is None or "model" not in getattr(points, "columns", ()):
        return {}
    out = {}
    for n, g in points.groupby("params", sort=True):
        names = {str(x) for x in g["model"].dropna() if str(x).strip()}
        if len(names) == 1:
            out[float(n)] = names.pop()
    return out


def named_target(target, known: "Sequence[ModelSpec]" = ()):
    """``target`` as a :class:`ModelSpec` when it names one of the ``known`` models the way
    :func:`parse_models` reads a name (``mini``, or ``mini:2e9`` at another budget), else
    ``target`` unchanged (``largest``, a loss, ``N:D``: :func:`parse_target` reads those)."""
    if not isinstance(target, str) or target.strip() == "largest":
        return target
    name = target.strip().partition(":")[0]
    if any(m.name == name and m.name != si(m.params) for m in known):
        spec = parse_models(target, known)[0]
        if spec.tokens is None:
            raise InputError(f"model {name!r} has no token count to serve as the target", field="target",
                             fix=f"give it one, e.g. --target {name}:1e9")
        return spec
    return target


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
                         fix="use largest, a loss such as 2.05, PARAMS:TOKENS such as 65e9:1.4e12, or a model of the "
                             "data by name (e.g. mini, with a sweep whose run records name its preset)") from None


def fresh_runs(rows, unique_tokens: float | None = None):
    """The rows that answer a question asked with ``unique_tokens`` U available (None: no data
    limit): those that saw min(D, U) unique tokens, so without a limit the runs on fresh data,
    and under one the fresh runs up to U tokens and the runs that repeated U. Runs that
    repeated other amounts answer other questions (Muennighoff et al. 2023). A row without a
    unique-token count is a fresh run."""
    d = rows["tokens"].to_numpy(float)
    seen = rows["unique_tokens"].to_numpy(float) if "unique_tokens" in rows.columns else d
    seen = np.where(np.isnan(seen), d, seen)
    return rows[np.isclose(seen, d if unique_tokens is None else np.minimum(d, unique_tokens), rtol=1e-6)]


def measured_loss(rows) -> float | None:
    """The loss a table measured for one model at one budget: the mean over its repeats
    (seeds) on fresh data (:func:`fresh_runs`); None where every run there repeated its data."""
    rows = fresh_runs(rows)
    return float(rows["loss"].mean()) if len(rows) else None


def models_from_points(points, flops: str = "6nd") -> list[ModelSpec]:
    """One :class:`ModelSpec` per distinct size in a points table (columns params, tokens,
    loss, optionally flops and run): its largest token budget and the loss measured there.
    """
    import pandas as pd

    if not isinstance(points, pd.DataFrame):
        raise TableError("expected a table of points", field="points", fix="load it with analysis.data.loading.load_points")
    missing = [c for c in ("params", "tokens", "loss") if c not in points.columns]
    if missing:
        raise TableError(f"missing column(s) {', '.join(missing)}", field="points",
                         fix="give a table with params, tokens and loss columns")
    if len(points) == 0:
        raise TableError("the table has no rows", field="points", fix="point at a sweep with finished runs")
    names = model_names(points)
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
        out.append(ModelSpec(float(n), float(top["tokens"].iloc[0]), measured_loss(top), fpt,
                             name=names.get(float(n), si(float(n))), run=run, params_nonembedding=ne))
    return out


@dataclass
class Target:
    """The model (or loss) the smaller models are measured against.

    ``loss`` is the loss the answers match: the target's measured loss when it is a model in
    the data (the question is about that run), else the law's value. ``loss_law`` is the law's
    value at the target and ``loss_interval`` that value's interval."""

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
    #: the law's own value at the target (None for a given loss)
    loss_law: float | None = None

    @property
    def law_value(self) -> float:
        """The law's value at the target, or the loss given when no law was evaluated there."""
        return self.loss_law if self.loss_law is not None else self.loss

    @property
    def matches_measured(self) -> bool:
        """Whether the answers match a measured loss rather than the law's value."""
        return self.loss_measured is not None and self.loss == self.loss_measured

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params, "law_params": self.law_params, "tokens": self.tokens,
                "flops": self.flops, "loss": self.loss, "loss_measured": self.loss_measured, "loss_law": self.loss_law,
                "loss_interval": list(self.loss_interval) if self.loss_interval else None, "how": self.how}



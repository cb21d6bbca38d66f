"""A stacked combination of laws: L(N, D) = sum_k w_k L_k(N, D), with sum_k w_k = 1, w_k >= 0.

Stacking (Wolpert 1992, "Stacked generalization"; Breiman 1996, "Stacked regressions")
weights several fitted models by how well they predict held-out data. Here the held-out
data are the backtest's (:mod:`analysis.selection.backtest`): each component law is fitted to the
points on its own, and ``--law auto`` chooses the weights that minimise the held-out error
of the combined prediction when that beats every single law clearly
(:func:`analysis.selection.backtest.stack_weights`).

A combination is named by its weights, ``mix(chinchilla=0.6,kaplan_nd=0.4)``, and that
name is all a saved fit needs: :func:`mix_law` rebuilds the same :class:`Law` from it. Its
parameters are the components', prefixed with the component's name (``chinchilla.E``).
It has no closed-form inversions; the numerical ones of :class:`Law` apply, since a
positive combination of laws that fall in D falls in D.
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from ..common.errors import InputError
from .base import LAWS, Law, register_builder

__all__ = ["MIX_PREFIX", "mix_name", "parse_mix", "mix_law", "is_mix"]

MIX_PREFIX = "mix("
_TERM = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*([0-9.eE+-]+)\s*$")
_CACHE: dict[str, Law] = {}


def is_mix(name) -> bool:
    return isinstance(name, str) and name.startswith(MIX_PREFIX) and name.endswith(")")


def mix_name(weights: Mapping[str, float]) -> str:
    """The canonical name: components in the order given, weights to 3 decimals, zero weights dropped."""
    terms = [(n, float(w)) for n, w in weights.items() if float(w) > 5e-4]
    return MIX_PREFIX + ",".join(f"{n}={w:.3g}" for n, w in terms) + ")"


def parse_mix(name: str) -> dict[str, float]:
    """``mix(a=0.6,b=0.4)`` -> {"a": 0.6, "b": 0.4}, checked: known joint laws, weights >= 0 summing to 1."""
    fix = "write mix(LAW=WEIGHT,...) with fittable joint laws and weights summing to 1, e.g. mix(chinchilla=0.6,kaplan_nd=0.4)"
    if not is_mix(name):
        raise InputError(f"not a combination of laws: {name!r}", field="law", fix=fix)
    out = {}
    for term in name[len(MIX_PREFIX):-1].split(","):
        m = _TERM.match(term)
        if not m:
            raise InputError(f"cannot read {term!r} in {name!r}", field="law", fix=fix)
        law, w = m.group(1), float(m.group(2))
        if law not in LAWS or not LAWS[law].is_joint or LAWS[law].form is None or LAWS[law].takes_unique_tokens:
            raise InputError(f"{law!r} in {name!r} is not a fittable law of N and D", field="law", fix=fix)
        if not np.isfinite(w) or w < 0 or law in out:
            raise InputError(f"weight {term!r} in {name!r} is negative, repeated or not a number", field="law", fix=fix)
        out[law] = w
    if len(out) < 2 or abs(sum(out.values()) - 1.0) > 2e-3:
        raise InputError(f"{name!r} needs two or more laws with weights summing to 1 (they sum to "
                         f"{sum(out.values()):.4g})", field="law", fix=fix)
    return out


def mix_law(weights: Mapping[str, float] | str) -> Law:
    """The :class:`Law` of a combination (from its weights or its name), built once per name."""
    w = parse_mix(weights) if isinstance(weights, str) else parse_mix(mix_name(weights))
    name = mix_name(w)
    if name in _CACHE:
        return _CACHE[name]
    comps = [(n, LAWS[n], wk) for n, wk in w.items()]

    def fn(N, D, **params):
        # sum_k w_k L_k(N, D): each component sees only its own (unprefixed) parameters
        return sum(wk * law.fn(N, D, **{p: params[f"{n}.{p}"] for p in law.params}) for n, law, wk in comps)

    law = Law(
        name=name, fn=fn,
        params=tuple(f"{n}.{p}" for n, lw, _ in comps for p in lw.params),
        inputs=("N", "D"),
        bounds={f"{n}.{p}": b for n, lw, _ in comps for p, b in lw.bounds.items()},
        citation="stacked combination of " + ", ".join(n for n, _, _ in comps)
                 + " (Breiman 1996, Stacked regressions)",
        formula=" + ".join(f"{wk:.3g} * L_{n}(N, D)" for n, _, wk in comps),
        size_terms=tuple(f"{n}.{p}" for n, lw, _ in comps for p in lw.size_terms),
        fit_to_points=False,
        components=dict(w),
    )
    _CACHE[name] = law
    return law


# get_law("mix(a=0.6,b=0.4)") builds the combination from its name
register_builder(is_mix, mix_law)

"""Scaling laws, one :class:`Law` object each, and the registry that names them.

Every law maps arrays of model size N (parameters), data D (training tokens) and/or
compute C (training FLOPs) to a loss in nats per token. A :class:`Law` carries its
numpy function (whose docstring gives the formula and the paper), its parameters and
bounds, the parametrisation and start grid the fitter uses, the inversions extrapolation
needs and its published parameter sets (:mod:`analysis.laws.base`). Fits, published
laws, extrapolation, figures and reports look laws up here by name and ask the object.

Families live one per module: :mod:`~analysis.laws.chinchilla` (Hoffmann et al. 2022,
Gadre et al. 2024, the per-run saturating curve) and :mod:`~analysis.laws.kaplan`
(Kaplan et al. 2020) and :mod:`~analysis.laws.muennighoff` (Muennighoff et al. 2023's
data-constrained law, with the unique tokens U as a third input). A new law is one module plus one :func:`register_law` call.
"""
from __future__ import annotations

from ..common.errors import InputError
from .base import D_MAX, Law, Published
from .chinchilla import (CHINCHILLA, GADRE2024, SATURATING_POWER, chinchilla, chinchilla_optimal, gadre2024,
                         power_law, saturating_power)
from .kaplan import KAPLAN_C, KAPLAN_D, KAPLAN_N, KAPLAN_ND, kaplan_c, kaplan_d, kaplan_n, kaplan_nd
from .muennighoff import DATA_CONSTRAINED, data_constrained, decay_law

__all__ = [
    "chinchilla", "gadre2024", "kaplan_n", "kaplan_d", "kaplan_nd", "kaplan_c",
    "saturating_power", "power_law", "chinchilla_optimal", "Law", "Published", "LAWS", "get_law",
    "register_law", "fittable", "published_sets", "D_MAX", "data_constrained", "decay_law",
]

#: Laws addressable by name in fits, published parameter sets and the CLI, in display order.
LAWS: dict[str, Law] = {}


def register_law(law: Law, replace: bool = False) -> Law:
    """Make ``law`` addressable by its name everywhere (fits, saved results, the CLI)."""
    if not isinstance(law, Law):
        raise InputError(f"expected a Law, got {type(law).__name__}", field="law",
                         fix="build it with analysis.laws.Law(...)")
    if law.name in LAWS and not replace and LAWS[law.name] is not law:
        raise InputError(f"a law named {law.name!r} is already registered", field="law",
                         fix="choose another name, or pass replace=True")
    taken = {s: other.name for other in LAWS.values() if other.name != law.name for s in other.published}
    clash = [s for s in law.published if s in taken]
    if clash:
        raise InputError(f"published set {clash[0]!r} already belongs to law {taken[clash[0]]!r}",
                         field="published", fix="give the published set another name")
    LAWS[law.name] = law
    return law


for _obj in (CHINCHILLA, GADRE2024, KAPLAN_ND, KAPLAN_N, KAPLAN_D, KAPLAN_C, SATURATING_POWER, DATA_CONSTRAINED):
    register_law(_obj)
del _obj


def get_law(name) -> Law:
    """The :class:`Law` called ``name`` (or ``name`` itself when it is a Law), or an
    InputError listing the known ones."""
    if isinstance(name, Law):
        return name
    from .mix import is_mix, mix_law

    if is_mix(name):  # a stacked combination is named by its weights, and rebuilt from them
        return mix_law(name)
    try:
        return LAWS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown law {name!r}", field="law", fix="use one of " + ", ".join(LAWS)) from None


def fittable() -> tuple[str, ...]:
    """Names of the laws :func:`analysis.fitting.fit.fit_law` fits to points tables."""
    return tuple(n for n, law in LAWS.items() if law.fit_to_points and law.form is not None)


def published_sets() -> dict[str, tuple[Law, Published]]:
    """Every published parameter set of every registered law: name -> (law, set)."""
    return {s: (law, pub) for law in LAWS.values() for s, pub in law.published.items()}


# Muennighoff et al. 2023's procedure: the decay constants on a fixed base law, ready for
# the two published bases (more with analysis.laws.decay_law).
decay_law("muennighoff2023")
decay_law("hoffmann2022")

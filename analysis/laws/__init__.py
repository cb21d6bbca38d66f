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

from .base import D_MAX, LAWS, Law, Published, fittable, get_law, published_sets, register_builder, register_law
from .chinchilla import (CHINCHILLA, GADRE2024, SATURATING_POWER, chinchilla, chinchilla_optimal, gadre2024, power_law,
                         saturating_power)
from .kaplan import KAPLAN_C, KAPLAN_D, KAPLAN_N, KAPLAN_ND, kaplan_c, kaplan_d, kaplan_n, kaplan_nd
from .mix import mix_law
from .muennighoff import DATA_CONSTRAINED, data_constrained, decay_law

__all__ = [
    "chinchilla", "gadre2024", "kaplan_n", "kaplan_d", "kaplan_nd", "kaplan_c",
    "saturating_power", "power_law", "chinchilla_optimal", "Law", "Published", "LAWS", "get_law",
    "register_law", "register_builder", "fittable", "published_sets", "D_MAX", "data_constrained", "decay_law",
    "mix_law",
]

for _obj in (CHINCHILLA, GADRE2024, KAPLAN_ND, KAPLAN_N, KAPLAN_D, KAPLAN_C, SATURATING_POWER, DATA_CONSTRAINED):
    register_law(_obj)
del _obj


# Muennighoff et al. 2023's procedure: the decay constants on a fixed base law, ready for
# the two published bases (more with analysis.laws.decay_law).
decay_law("muennighoff2023")
decay_law("hoffmann2022")

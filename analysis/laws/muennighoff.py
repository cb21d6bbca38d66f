"""Data-constrained scaling: Muennighoff et al. 2023's law of repeated epochs.

Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models", arXiv:2305.16264,
Sec. 3) keep the Chinchilla form L = E + A / N'^alpha + B / D'^beta (Hoffmann et al.
2022, eq. 2) but replace data and parameters by their effective values when a run
repeats U_D unique tokens:

    D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),   R_D = D / U_D - 1,
    N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),   R_N = N / U_N - 1,
    U_N = min(N_opt(U_D), N),

where R_D counts the epochs beyond the first, N_opt(U_D) is the compute-optimal size of
the base law for U_D tokens (Hoffmann et al. 2022, eq. 4, solved for the N whose optimal
D is U_D: N_opt = G (G U_D)^(beta/alpha), G = (alpha A / (beta B))^(1/(alpha+beta))), and
R_N counts the parameters beyond it. Repeated tokens are worth less and less: D' tends to
U_D (1 + R_D*) as D grows, so a repeated corpus sets a floor on the loss. A run trains on
min(U, D) unique tokens, so U_D = min(U, D) here; in the paper's table U <= D always.

Two laws come from this module. ``data_constrained`` has all seven parameters free and
carries the published sets (``muennighoff2023``: the authors' C4 base law with their
decay constants; ``hoffmann2022_dc``: the same decay constants on Hoffmann et al.'s base).
:func:`decay_law` puts the decay terms on a fixed base law and leaves only R_D* and R_N*
free: the paper's own fitting procedure (their notebook, cell 29). ``muennighoff2023_decay``
and ``hoffmann2022_decay`` are registered ready-made.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Mapping

import numpy as np

from ..common.errors import InputError
from .base import LAWS, Law, Published, get_law, published_sets, register_law

__all__ = ["data_constrained", "effective_data", "effective_params", "optimal_size_for_tokens",
           "DataConstrainedLaw", "DATA_CONSTRAINED", "decay_law", "MUENNIGHOFF2023_BASE", "MUENNIGHOFF2023_DECAY",
           "BASE_PARAMS", "DECAY_PARAMS", "DECAY_GRID", "PAPER_START"]

MUENNIGHOFF2023 = ("Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models' (arXiv:2305.16264), "
                   "Sec. 3; constants from the authors' utils/parametric_fit.ipynb, cells 7 and 29")
CITATION = ("Muennighoff et al. 2023, Scaling Data-Constrained Language Models, Sec. 3 "
            "(effective data D' and effective parameters N' in Hoffmann et al. 2022's eq. 2)")
FORMULA = ("L(N, D, U) = E + A / N'^alpha + B / D'^beta, D' = U_D (1 + R_D* (1 - exp(-R_D / R_D*))), "
           "R_D = D / U_D - 1, N' = U_N (1 + R_N* (1 - exp(-R_N / R_N*))), R_N = N / U_N - 1, "
           "U_N = min(N_opt(U_D), N), U_D = min(U, D)")

BASE_PARAMS = ("E", "A", "B", "alpha", "beta")
DECAY_PARAMS = ("R_D_star", "R_N_star")

#: The authors' C4 base law: Chinchilla's form with alpha = beta tied, fitted to 54 points
#: of Chinchilla's C4 IsoFLOP curves (notebook cell 7: a = 6.255414, b = 7.3049974,
#: e = 0.6254804, alpha = beta = 0.3526596; A, B, E are their exponentials).
MUENNIGHOFF2023_BASE = {"E": math.exp(0.6254804), "A": math.exp(6.255414), "B": math.exp(7.3049974),
                        "alpha": 0.3526596, "beta": 0.3526596}
#: R_D* and R_N* fitted with the base above held fixed (notebook cell 29).
MUENNIGHOFF2023_DECAY = {"R_D_star": 15.387756, "R_N_star": 5.309743}
HOFFMANN2022_BASE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def optimal_size_for_tokens(U, A, B, alpha, beta):
    """The compute-optimal N whose optimal data is U tokens under E + A/N^alpha + B/D^beta:
    N_opt = G (G U)^(beta/alpha), G = (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al.
    2022, eq. 4, with D_opt = U; the notebook's optimal_N(D_to_C(U)))."""
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    return G * (G * np.asarray(U, dtype=float)) ** (beta / alpha)


def effective_data(D, U, R_D_star):
    """D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)) with U_D = min(U, D), R_D = D / U_D - 1
    (Muennighoff et al. 2023, Sec. 3): D' = D for one epoch, and D' -> U_D (1 + R_D*)."""
    D = np.asarray(D, dtype=float)
    U_D = np.minimum(np.asarray(U, dtype=float), D)
    R_D = np.maximum(D / U_D - 1.0, 0.0)
    return U_D + U_D * R_D_star * -np.expm1(-R_D / R_D_star)


def effective_params(N, D, U, A, B, alpha, beta, R_N_star):
    """N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)) with U_N = min(N_opt(U_D), N) and
    R_N = N / U_N - 1 (Muennighoff et al. 2023, Sec. 3): parameters beyond the
    compute-optimal size for the unique data are worth less and less."""
    N = np.asarray(N, dtype=float)
    U_D = np.minimum(np.asarray(U, dtype=float), np.asarray(D, dtype=float))
    U_N = np.minimum(optimal_size_for_tokens(U_D, A, B, alpha, beta), N)
    R_N = np.maximum(N / U_N - 1.0, 0.0)
    return U_N + U_N * R_N_star * -np.expm1(-R_N / R_N_star)


def data_constrained(N, D, U, E, A, B, alpha, beta, R_D_star, R_N_star):
    """Muennighoff et al. 2023's data-constrained law (Sec. 3):

        L(N, D, U) = E + A / N'^alpha + B / D'^beta

    with the effective data D' (:func:`effective_data`) and parameters N'
    (:func:`effective_params`). D counts every training token, repeats included; U is the
    number of unique tokens the run repeats.
    """
    n_eff = effective_params(N, D, U, A, B, alpha, beta, R_N_star)
    d_eff = effective_data(D, U, R_D_star)
    return E + A * n_eff ** (-alpha) + B * d_eff ** (-beta)


@dataclass(frozen=True, eq=False)
class DataConstrainedLaw(Law):
    """The data-constrained law, with ``fixed`` holding base-law parameters a fit leaves alone.

    The inversions have closed forms once the run repeats its data: the floor of
    repeating U tokens for ever, and the tokens to reach a loss, D = U_D (1 + R_D) with
    R_D = -R_D* log(1 - (D'/U_D - 1) / R_D*).
    """

    fixed: Mapping[str, float] = field(default_factory=dict)

    def full(self, params: Mapping[str, Any]) -> dict:
        """Every parameter of :func:`data_constrained`: the fixed ones and the free ones."""
        return {**self.fixed, **{p: params[p] for p in self.params}}

    def base_params(self, params: Mapping[str, Any]) -> dict:
        """The base law's E, A, B, alpha, beta (the law without repetition, Hoffmann et al.'s eq. 2)."""
        f = self.full(params)
        return {k: f[k] for k in BASE_PARAMS}

    def floor(self, params, N, U=None) -> np.ndarray:
        """The loss of model N trained for ever. Without a data limit, the base law's
        E + A / N^alpha; with U unique tokens, D' -> U (1 + R_D*) and U_N = min(N_opt(U), N),
        the floor repetition cannot get below."""
        p = self.full(params)
        N = np.asarray(N, dtype=float)
        if U is None:
            return np.asarray(p["E"] + p["A"] * N ** (-np.asarray(p["alpha"])), dtype=float)
        U = np.asarray(U, dtype=float)
        n_eff = effective_params(N, U, U, p["A"], p["B"], p["alpha"], p["beta"], p["R_N_star"])
        return np.asarray(p["E"] + p["A"] * n_eff ** (-p["alpha"]) + p["B"] * (U * (1 + p["R_D_star"])) ** (-p["beta"]),
                          dtype=float)

    def tokens_to_match(self, params, N, loss, U=None) -> np.ndarray:
        """Tokens D (repeats included) with L(N, D, U) = loss; +inf at or below the floor.

        Past one epoch N' no longer depends on D, so the data term gives D' =
        (B / (loss - E - A / N'^alpha))^(1/beta), and D follows by inverting D'. A loss
        reached within the first epoch (D' < U) is found by the bracketed root find."""
        if U is None:
            return super().tokens_to_match(params, N, loss)
        p = self.full(params)
        arrays = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(loss, dtype=float),
                                     np.asarray(U, dtype=float), *[np.asarray(p[k], dtype=float) for k in
                                                                     BASE_PARAMS + DECAY_PARAMS])
        n, target, u, E, A, B, alpha, beta, rd, rn = (a.astype(float).ravel() for a in arrays)
        n_eff = effective_params(n, u, u, A, B, alpha, beta, rn)
        gap = target - E - A * n_eff ** (-alpha)
        out = np.full(n.shape, np.inf)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            d_eff = np.where(gap > 0, (B / gap) ** (1.0 / beta), np.inf)
            frac = (d_eff / u - 1.0) / rd
            repeated = (gap > 0) & (d_eff >= u) & (frac < 1.0)
            out[repeated] = u[repeated] * (1.0 - rd[repeated] * np.log1p(-frac[repeated]))
        first = np.flatnonzero((gap > 0) & (d_eff < u))
        for i in first:
            one = {k: v[i] for k, v in zip(BASE_PARAMS + DECAY_PARAMS, (E, A, B, alpha, beta, rd, rn))}
            free = {k: one[k] for k in self.params}
            out[i] = float(super().tokens_to_match(free, n[i], target[i], u[i]))
        return out.reshape(arrays[0].shape)


_INF = np.inf
_BOUNDS = {"E": (0.0, 10.0), "A": (0.0, _INF), "B": (0.0, _INF), "alpha": (0.0, 2.5), "beta": (0.0, 2.5),
           "R_D_star": (0.0, _INF), "R_N_star": (0.0, _INF)}


def _joint_grid(X) -> np.ndarray:
    # Rows of (E, A, B, alpha, beta, R_D*, R_N*): the base around published C4 and
    # MassiveText values, the decay constants over the range the paper's variants found.
    return np.array(list(product((1.0, 1.8, 2.5), (100.0, 500.0, 2500.0), (100.0, 1500.0, 1e4),
                                 (0.25, 0.35, 0.5), (0.25, 0.35, 0.5), (3.0, 15.0, 60.0), (1.0, 5.0, 25.0))))


#: Every parameter free: Muennighoff et al.'s form fitted jointly.
DATA_CONSTRAINED = DataConstrainedLaw(
    "data_constrained", data_constrained, BASE_PARAMS + DECAY_PARAMS, ("N", "D", "U"), dict(_BOUNDS),
    citation=CITATION, formula=FORMULA, start_grid=_joint_grid,
    grid_description="a 2,187-point grid over the base law and the decay constants",
    candidate=True,
    size_terms=("E", "A", "alpha"),
    published={
        "muennighoff2023": Published(
            {**MUENNIGHOFF2023_BASE, **MUENNIGHOFF2023_DECAY}, MUENNIGHOFF2023,
            "The C4 base law (A = 520.82, B = 1487.72, E = 1.869, alpha = beta = 0.3527) with R_D* = 15.387756 "
            "and R_N* = 5.309743 fitted on 182 curated runs (Huber delta 1e-3 on log loss)."),
        "hoffmann2022_dc": Published(
            {**HOFFMANN2022_BASE, **MUENNIGHOFF2023_DECAY},
            "Hoffmann et al. 2022 Approach 3 base law with Muennighoff et al. 2023's R_D*, R_N*",
            "Muennighoff et al.'s decay constants put on Hoffmann et al.'s law (fitted on other data than the "
            "constants: an illustration, not a fit)."),
    },
)


def _decay_fn(fixed: Mapping[str, float]):
    def fn(N, D, U, R_D_star, R_N_star):
        """Muennighoff et al. 2023's data-constrained law with the base law held fixed
        (:func:`data_constrained`)."""
        return data_constrained(N, D, U, fixed["E"], fixed["A"], fixed["B"], fixed["alpha"], fixed["beta"],
                                R_D_star, R_N_star)
    return fn


#: Start points for the two decay constants: the 3 x 3 grid 20/3, 40/3, 20 with which
#: build_muennighoff2023.py --refit reproduces the authors' fit, widened to 1 and 100 in
#: R_D* because the objective has several local optima along R_D* (docs/analysis.md).
DECAY_GRID = np.array(list(product((1.0, 20 / 3, 40 / 3, 20.0, 100.0), (20 / 3, 40 / 3, 20.0))))
#: The paper's optimum (cell 29) is the local optimum reached from its own region: start there.
PAPER_START = np.array([[40 / 3, 40 / 3]])


def decay_law(base, base_params: Mapping[str, float] | None = None, name: str | None = None,
              register: bool = True) -> DataConstrainedLaw:
    """The decay terms on a fixed base law, with R_D* and R_N* the only free parameters:
    Muennighoff et al. 2023's procedure (their notebook, cell 29) for any base.

    ``base``: a published parameter set's name (``"hoffmann2022"``, ``"muennighoff2023"``),
    a fitted or published :class:`~analysis.fitting.result.LawFit`, or a law (name or object) with
    ``base_params``. The base law must be a sum of power terms in N and D (it has
    ``terms``: chinchilla, gadre2024). The law is registered (so :func:`analysis.fitting.fit.fit_law`
    can fit it) as ``name``, by default ``<base>_decay``.
    """
    label = None
    if isinstance(base, str) and base_params is None:
        sets = published_sets()
        if base not in sets:
            raise InputError(f"unknown published set {base!r}", field="base",
                             fix="use one of " + ", ".join(sets) + ", or pass base_params")
        law, pub = sets[base]
        base_params, label = dict(pub.params), base
    elif hasattr(base, "params") and hasattr(base, "law") and not isinstance(base, Law):
        law, base_params, label = get_law(base.law), dict(base.params), base.name or base.law
    else:
        law = get_law(base)
        label = law.name
        if base_params is None:
            raise InputError("a base law needs its parameter values", field="base_params",
                             fix="pass base_params={'E': ..., 'A': ..., ...} or a published set's name")
    if isinstance(law, DataConstrainedLaw):
        fixed = law.base_params(base_params)
    elif hasattr(law, "terms") and law.is_joint:
        E, A, B, alpha, beta = (float(v) for v in law.terms(base_params))
        fixed = {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta}
    else:
        raise InputError(f"law {law.name!r} is not a sum of power terms in N and D", field="base",
                         fix="use a chinchilla or gadre2024 parameter set as the base")
    name = name or f"{label}_decay"
    existing = LAWS.get(name)
    if isinstance(existing, DataConstrainedLaw) and dict(existing.fixed) == fixed:
        return existing
    shown = ", ".join(f"{k} = {v:.6g}" for k, v in fixed.items())
    obj = DataConstrainedLaw(
        name, _decay_fn(fixed), DECAY_PARAMS, ("N", "D", "U"), {k: _BOUNDS[k] for k in DECAY_PARAMS},
        citation=CITATION + f"; base law {label} held fixed ({shown})", formula=FORMULA,
        start_grid=DECAY_GRID, grid_description="a 15-point grid of decay constants", fixed=fixed,
        published={})
    return register_law(obj, replace=True) if register else obj

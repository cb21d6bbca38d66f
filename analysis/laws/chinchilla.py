"""Sums of power terms and a floor: Hoffmann et al. 2022's law, Gadre et al. 2024's
over-training law, and a single run's saturating loss curve.

All three are L = E + sum_k A_k / x_k^alpha_k, so their floors, the tokens to reach a
loss and (for the joint laws) the compute-optimal allocation have closed forms.
"""
from __future__ import annotations

import math
from itertools import product
from typing import Any, Mapping

import numpy as np

from .base import Law, Published
from .forms import EPOCH_GRID, LSEForm, gadre_grid

__all__ = ["chinchilla", "gadre2024", "saturating_power", "power_law", "chinchilla_optimal",
           "CHINCHILLA", "GADRE2024", "SATURATING_POWER", "PowerSumLaw"]

HOFFMANN2022 = ("Hoffmann et al. 2022, 'Training Compute-Optimal Large Language Models', "
                "Approach 3 fit, Sec. 3.3")
BESIROGLU2024 = ("Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt', "
                 "refit of Approach 3 on data reconstructed from Hoffmann et al.'s Figure 4")


def chinchilla(N, D, E, A, B, alpha, beta):
    """Chinchilla parametric loss, Hoffmann et al. 2022, eq. (2):

        L(N, D) = E + A / N^alpha + B / D^beta

    E is the irreducible loss of the data, A / N^alpha the excess from a finite model,
    B / D^beta the excess from finite data.
    """
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    return E + A * N ** (-alpha) + B * D ** (-beta)


def gadre2024(N, D, E, A, B, eta):
    """Over-training law of Gadre et al. 2024 ("Language models scale reliably with
    over-training and on downstream tasks", Sec. 2): the Chinchilla form with one
    exponent shared by N and D,

        L(N, D) = E + A / N^eta + B / D^eta.

    Gadre et al. write it as L(C, M) = E + (a M^eta' + b M^-eta') C^eta' with the token
    multiplier M = D / N and C = 6ND; that is this form with eta' = -eta / 2
    (a M^eta' C^eta' is proportional to D^-eta, b M^-eta' C^eta' to N^-eta).
    """
    return chinchilla(N, D, E, A, B, eta, eta)


def saturating_power(D, E, B, beta):
    """A single run's loss curve in its stable phase: L(D) = E + B / D^beta
    (the data term of Hoffmann et al. 2022 eq. (2) at fixed N; E absorbs A / N^alpha)."""
    return E + B * np.asarray(D, dtype=float) ** (-beta)


def power_law(x, k, a):
    """y = k * x^a: the allocation laws N_opt = k C^a and D_opt = k C^b
    (Hoffmann et al. 2022, Approaches 1 and 2)."""
    return k * np.asarray(x, dtype=float) ** a


def chinchilla_optimal(C, E, A, B, alpha, beta, flops_per_param_token: float = 6.0):
    """Compute-optimal (N, D) for the Chinchilla law under C = 6ND
    (Hoffmann et al. 2022, eq. (4)):

        N_opt = G (C/6)^(beta / (alpha+beta)),  D_opt = G^-1 (C/6)^(alpha / (alpha+beta)),
        G = (alpha A / (beta B))^(1 / (alpha+beta)).
    """
    C = np.asarray(C, dtype=float)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    x = C / flops_per_param_token
    n_opt = G * x ** (beta / (alpha + beta))
    d_opt = x ** (alpha / (alpha + beta)) / G
    return n_opt, d_opt


class PowerSumLaw(Law):
    """E + A / N^alpha + B / D^beta and its special cases, with closed-form inversions.

    ``terms`` maps the law's parameters to (E, A, B, alpha, beta); a law without an N term
    (a single run's curve) has A = 0.
    """

    def terms(self, params: Mapping[str, Any]):
        raise NotImplementedError

    def floor(self, params, N, U=None) -> np.ndarray:
        """E + A / N^alpha (Hoffmann et al. 2022, eq. 2 as D -> infinity)."""
        E, A, _, alpha, _ = self.terms(params)
        N = np.asarray(N, dtype=float)
        return np.asarray(E + A * N ** (-np.asarray(alpha)), dtype=float)

    def tokens_to_match(self, params, N, loss, U=None) -> np.ndarray:
        """D* = (B / (loss - E - A N^-alpha))^(1/beta), eq. 2 solved for D; +inf at or
        below the floor."""
        E, A, B, alpha, beta = self.terms(params)
        N = np.asarray(N, dtype=float)
        gap = np.asarray(loss, dtype=float) - (E + A * N ** (-np.asarray(alpha)))
        gap, B, beta = np.broadcast_arrays(np.asarray(gap, dtype=float), np.asarray(B, dtype=float),
                                           np.asarray(beta, dtype=float))
        out = np.full(gap.shape, np.inf)
        ok = gap > 0
        with np.errstate(over="ignore"):
            out[ok] = (B[ok] / gap[ok]) ** (1.0 / beta[ok])
        return out

    def optimal_allocation(self, params, C, flops_per_param_token: float = 6.0):
        if not self.is_joint:
            return super().optimal_allocation(params, C, flops_per_param_token)
        E, A, B, alpha, beta = self.terms(params)
        return chinchilla_optimal(C, E, A, B, alpha, beta, flops_per_param_token=flops_per_param_token)


class _Chinchilla(PowerSumLaw):
    def terms(self, p):
        return p["E"], p["A"], p["B"], p["alpha"], p["beta"]

    def derived(self, params):
        """Allocation exponents (Hoffmann et al. 2022, eq. 4): a = beta/(alpha+beta) for
        N_opt ~ C^a, b = alpha/(alpha+beta) for D_opt ~ C^b."""
        s = params["alpha"] + params["beta"]
        if s <= 0:
            return {"a": math.nan, "b": math.nan}
        return {"a": params["beta"] / s, "b": params["alpha"] / s}


class _Gadre(PowerSumLaw):
    def terms(self, p):
        # Gadre et al. 2024: one exponent eta shared by N and D
        return p["E"], p["A"], p["B"], p["eta"], p["eta"]


class _Saturating(PowerSumLaw):
    def terms(self, p):
        return p["E"], 0.0, p["B"], 0.0, p["beta"]

    def floor(self, params, N, U=None) -> np.ndarray:
        """E: one run's curve has no size term."""
        return np.asarray(params["E"], dtype=float) + 0.0 * np.asarray(N, dtype=float)


_INF = np.inf
_LOG10 = math.log(10.0)

#: Parameters only size differences determine: E + A/N^alpha needs three distinct sizes.
CHINCHILLA = _Chinchilla(
    "chinchilla", chinchilla, ("E", "A", "B", "alpha", "beta"), ("N", "D"),
    {"E": (0.0, 10.0), "A": (0.0, _INF), "B": (0.0, _INF), "alpha": (0.0, 2.5), "beta": (0.0, 2.5)},
    citation="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, eq. (2)",
    formula="L(N, D) = E + A / N^alpha + B / D^beta",
    form=LSEForm(
        "chinchilla", ("e", "a", "b", "alpha", "beta"),
        ((1, ((3, "x"),)), (2, ((4, "y"),)), (0, ())), ("x", "y"),
        lambda t: {"E": math.exp(t[0]), "A": math.exp(t[1]), "B": math.exp(t[2]),
                   "alpha": float(t[3]), "beta": float(t[4])},
        lambda p: np.array([math.log(p["E"]), math.log(p["A"]), math.log(p["B"]), p["alpha"], p["beta"]]),
        lambda X: EPOCH_GRID,
        ((None, _LOG10), (None, None), (None, None), (0.0, 2.5), (0.0, 2.5)),
    ),
    grid_description="the 4,500-point grid of Besiroglu et al. 2024",
    candidate=True,
    size_terms=("E", "A", "alpha"),
    published={
        "hoffmann2022": Published({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, HOFFMANN2022,
                                  "Chinchilla Approach 3 (Hoffmann et al. 2022, Sec. 3.3); fitted with a Huber "
                                  "loss (delta 1e-3) on log-loss."),
        "besiroglu2024": Published({"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
                                   BESIROGLU2024,
                                   "The replication's refit (Besiroglu et al. 2024, their Approach-3 estimates): "
                                   "about 20 tokens per parameter at the optimum, in line with Hoffmann et al.'s "
                                   "Approaches 1 and 2."),
    },
)

#: E + A/N^eta with eta also set by D: two distinct sizes.
GADRE2024 = _Gadre(
    "gadre2024", gadre2024, ("E", "A", "B", "eta"), ("N", "D"),
    {"E": (0.0, 10.0), "A": (0.0, _INF), "B": (0.0, _INF), "eta": (0.0, 2.5)},
    citation="Gadre et al. 2024, Language models scale reliably with over-training and on downstream tasks, Sec. 2",
    formula="L(N, D) = E + A / N^eta + B / D^eta",
    form=LSEForm(
        "gadre2024", ("e", "a", "b", "eta"),
        ((1, ((3, "x"),)), (2, ((3, "y"),)), (0, ())), ("x", "y"),
        lambda t: {"E": math.exp(t[0]), "A": math.exp(t[1]), "B": math.exp(t[2]), "eta": float(t[3])},
        lambda p: np.array([math.log(p["E"]), math.log(p["A"]), math.log(p["B"]), p["eta"]]),
        gadre_grid,
        ((None, _LOG10), (None, None), (None, None), (0.0, 2.5)),
    ),
    candidate=True,
    size_terms=("E", "A"),
    parent="chinchilla",
    equal=("alpha", "beta"),
)

SATURATING_POWER = _Saturating(
    "saturating_power", saturating_power, ("E", "B", "beta"), ("D",),
    {"E": (0.0, 10.0), "B": (0.0, _INF), "beta": (0.0, 2.5)},
    citation="Stable-phase loss curve, the data term of Hoffmann et al. 2022 eq. (2)",
    formula="L(D) = E + B / D^beta",
    form=LSEForm(
        "saturating_power", ("e", "b", "beta"),
        ((1, ((2, "y"),)), (0, ())), ("y",),
        lambda t: {"E": math.exp(t[0]), "B": math.exp(t[1]), "beta": float(t[2])},
        lambda p: np.array([math.log(p["E"]), math.log(p["B"]), p["beta"]]),
        lambda X: np.array(list(product(np.arange(-1.0, 1.51, 0.5), np.arange(0.0, 25.1, 2.5),
                                        [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5]))),
        ((None, _LOG10), (None, None), (0.0, 2.5)),
    ),
    fit_to_points=False,
)

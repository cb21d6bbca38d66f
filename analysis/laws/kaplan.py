"""Kaplan et al. 2020, "Scaling Laws for Neural Language Models": the joint law L(N, D)
and the single-variable laws L(N), L(D) and L(C_min).

Kaplan et al. count N without embeddings; a fit uses ``params_nonembedding`` when the
table has it, and their published sets are evaluated at that count.
"""
from __future__ import annotations

import numpy as np

from ..data.points import frontier_points, log_key, n_distinct
from .base import Law, Published
from .forms import KaplanNDForm, single_power_form

__all__ = ["kaplan_n", "kaplan_d", "kaplan_nd", "kaplan_c", "KAPLAN_ND", "KAPLAN_N", "KAPLAN_D", "KAPLAN_C"]

KAPLAN2020 = "Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', Sec. 1.2 and Table 2"
_INF = np.inf


def kaplan_n(N, N_c, alpha_N):
    """Kaplan et al. 2020, eq. (1.1): loss of models trained to convergence,
    L(N) = (N_c / N)^alpha_N, with N the non-embedding parameters."""
    return (N_c / np.asarray(N, dtype=float)) ** alpha_N


def kaplan_d(D, D_c, alpha_D):
    """Kaplan et al. 2020, eq. (1.2): loss of large models early-stopped on D tokens,
    L(D) = (D_c / D)^alpha_D."""
    return (D_c / np.asarray(D, dtype=float)) ** alpha_D


def kaplan_nd(N, D, N_c, D_c, alpha_N, alpha_D):
    """Kaplan et al. 2020, eq. (1.5): the joint law

        L(N, D) = [ (N_c / N)^(alpha_N / alpha_D) + D_c / D ]^alpha_D

    with N the non-embedding parameters."""
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    return ((N_c / N) ** (alpha_N / alpha_D) + D_c / D) ** alpha_D


def kaplan_c(C, C_c, alpha_C):
    """Kaplan et al. 2020, eq. (1.3): the compute-efficient frontier
    L(C_min) = (C_c / C_min)^alpha_C (C in the same unit as C_c)."""
    return (C_c / np.asarray(C, dtype=float)) ** alpha_C


class _KaplanND(Law):
    def floor(self, params, N, U=None) -> np.ndarray:
        """(N_c / N)^alpha_N: eq. (1.5) as D -> infinity."""
        return np.asarray((params["N_c"] / np.asarray(N, dtype=float)) ** np.asarray(params["alpha_N"]), dtype=float)


def _best_per(points, by: str, other: str, what: str, why: str):
    """Each value of ``by``'s lowest-loss point when ``other`` varies (a single-variable law
    describes the best run at each value), with the note saying so; all points otherwise."""
    if n_distinct(points[other]) <= 1:
        return points, []
    sel = points.loc[points.groupby(log_key(points[by]))["loss"].idxmin()]
    return sel, [f"{what} lowest loss ({len(sel)} of {len(points)} points): {why}"]


class _KaplanN(Law):
    def select_points(self, points, frontier=True):
        return _best_per(points, "params", "tokens", "L(N) fitted to each model size's",
                         "Kaplan et al. 2020 fit it to converged models")


class _KaplanD(Law):
    def select_points(self, points, frontier=True):
        return _best_per(points, "tokens", "params", "L(D) fitted to each token budget's",
                         "Kaplan et al. 2020 fit it to large models early-stopped on D tokens")


class _KaplanC(Law):
    def select_points(self, points, frontier=True):
        if not frontier:
            return points, []
        sel = frontier_points(points)
        return sel, [f"L(C_min) fitted to the {len(sel)} compute-efficient frontier points "
                     f"of {len(points)} (Kaplan et al. 2020, Sec. 6.1)"]


KAPLAN_ND = _KaplanND(
    "kaplan_nd", kaplan_nd, ("N_c", "D_c", "alpha_N", "alpha_D"), ("N", "D"),
    {"N_c": (0.0, _INF), "D_c": (0.0, _INF), "alpha_N": (0.0, 2.0), "alpha_D": (0.0, 2.0)},
    citation="Kaplan et al. 2020, eq. (1.5)",
    formula="L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
    form=KaplanNDForm(),
    # (N_c/N)^alpha_N: two distinct sizes
    candidate=True,
    size_terms=("N_c", "alpha_N"),
    nonembedding=True,
    published={"kaplan2020": Published({"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
                                       KAPLAN2020,
                                       "Kaplan et al. 2020 joint law L(N, D), eq. (1.5) with Table 2's fit: "
                                       "alpha_N=0.076, alpha_D=0.103, N_c=6.4e13, D_c=1.8e13 (N non-embedding).")},
)

KAPLAN_N = _KaplanN(
    "kaplan_n", kaplan_n, ("N_c", "alpha_N"), ("N",),
    {"N_c": (0.0, _INF), "alpha_N": (0.0, 2.0)},
    citation="Kaplan et al. 2020, Scaling Laws for Neural Language Models, eq. (1.1)",
    formula="L(N) = (N_c / N)^alpha_N",
    form=single_power_form("kaplan_n", "x", "N_c", "alpha_N"),
    size_terms=("N_c", "alpha_N"),
    nonembedding=True,
    published={"kaplan2020_n": Published({"N_c": 8.8e13, "alpha_N": 0.076}, KAPLAN2020,
                                         "Kaplan et al. 2020 eq. (1.1): alpha_N=0.076, N_c=8.8e13 "
                                         "(non-embedding N).")},
)

KAPLAN_D = _KaplanD(
    "kaplan_d", kaplan_d, ("D_c", "alpha_D"), ("D",),
    {"D_c": (0.0, _INF), "alpha_D": (0.0, 2.0)},
    citation="Kaplan et al. 2020, eq. (1.2)",
    formula="L(D) = (D_c / D)^alpha_D",
    form=single_power_form("kaplan_d", "y", "D_c", "alpha_D"),
    nonembedding=True,
    published={"kaplan2020_d": Published({"D_c": 5.4e13, "alpha_D": 0.095}, KAPLAN2020,
                                         "Kaplan et al. 2020 eq. (1.2): alpha_D=0.095, D_c=5.4e13 tokens.")},
)

KAPLAN_C = _KaplanC(
    "kaplan_c", kaplan_c, ("C_c", "alpha_C"), ("C",),
    {"C_c": (0.0, _INF), "alpha_C": (0.0, 2.0)},
    citation="Kaplan et al. 2020, eq. (1.3)",
    formula="L(C_min) = (C_c / C_min)^alpha_C",
    form=single_power_form("kaplan_c", "c", "C_c", "alpha_C"),
    # 1 PF-day = 1e15 * 86400 = 8.64e19 FLOPs, so that C is in FLOPs like everywhere else
    published={"kaplan2020_c": Published({"C_c": 3.1e8 * 8.64e19, "alpha_C": 0.050}, KAPLAN2020,
                                         "Kaplan et al. 2020 eq. (1.3): alpha_C=0.050, C_c=3.1e8 PF-days, "
                                         "converted to FLOPs (1 PF-day = 8.64e19 FLOPs).")},
)

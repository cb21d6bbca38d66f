"""Loss-curve laws over a learning-rate schedule, one :class:`ScheduleLaw` object each.

A schedule law predicts one run's loss at each step from the learning rate at every step
so far. Each object knows its parameters, bounds and citation, how to precompute the
schedule sums it needs at the observed steps, its prediction and Jacobian, and the split
into linear and nonlinear parameters that its start points come from (variable
projection). :mod:`analysis.fitting.curves` reads curves and fits them, asking the object.

Schedules are duck-typed: anything with ``lr`` (the rate at steps 1..T), ``steps``,
``cumulative()`` and ``decrements()``, as :class:`analysis.fitting.curves.Schedule` has.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from ..common.errors import InputError

__all__ = ["CONVENTIONS", "LUO2025", "decrements", "ScheduleLaw", "ANNEALING", "MULTIPOWER", "SCHEDULE_LAWS", "TISSUE_LAMBDA", "annealing_areas",
           "tissue_annealing", "luo_multipower", "MPLTerms"]

#: Tissue et al. 2024 momentum decay of the annealing area.
TISSUE_LAMBDA = 0.999

#: Which steps the multi-power law's loss-drop term sums over. ``printed``: Luo et al.
#: 2025's eq. (6) read with eta_0 the peak rate at the end of warmup, so only the decay
#: counts. ``reference``: the authors' code, which sums every step's change from step 1
#: with eta_0 = 0, so the warmup ramp enters LD as negative drops. Their published
#: parameters are fitted under the second; read under the first they are 3-6% off.
CONVENTIONS = {
    "printed": "Luo et al. 2025 eq. (6), loss drops from the end of warmup (eta_0 = the peak rate)",
    "reference": "Luo et al. 2025's reference code: loss drops from step 1 with eta_0 = 0, the warmup ramp included",
}


def decrements(schedule: Any, convention: str = "printed") -> np.ndarray:
    """eta_{t-1} - eta_t for t = 1..T under a :data:`CONVENTIONS` entry."""
    if convention not in CONVENTIONS:

        raise InputError(f"unknown convention {convention!r}", field="convention", fix="use " + " or ".join(CONVENTIONS))
    if convention == "printed":
        return schedule.decrements()
    lr = np.asarray(schedule.lr, dtype=float)
    return np.concatenate([[0.0], lr[:-1]]) - lr


#: Luo et al. 2025's fitted multi-power parameters for their 25M, 100M and 400M models
#: (the authors' released code, fitted under the ``reference`` convention on schedules
#: with a 2,160-step linear warmup from 0 to a peak of 3e-4).
LUO2025 = {
    "luo2025_25m": {"L0": 3.04045406, "A": 0.52468604, "alpha": 0.50786857, "B": 363.78751622,
                    "C": 2.06560812, "beta": 0.58279013, "gamma": 0.64142257},
    "luo2025_100m": {"L0": 2.6514477, "A": 0.60115152, "alpha": 0.45295811, "B": 437.9464276,
                     "C": 2.13245612, "beta": 0.59785199, "gamma": 0.65523644},
    "luo2025_400m": {"L0": 2.37474466, "A": 0.65421216, "alpha": 0.42878731, "B": 523.42464371,
                     "C": 2.02462735, "beta": 0.59350493, "gamma": 0.63472457},
}


def annealing_areas(schedule: Any, lam: float = TISSUE_LAMBDA) -> tuple[np.ndarray, np.ndarray]:
    """Tissue et al. 2024's S1 (forward area) and S2 (annealing area) at every step 1..T."""
    from scipy.signal import lfilter

    s1 = np.cumsum(schedule.lr)
    m = lfilter([1.0], [1.0, -lam], schedule.decrements())
    return s1, np.cumsum(m)


def tissue_annealing(S1, S2, L0, A, alpha, C):
    """Tissue et al. 2024, eq. (1): L = L0 + A S1^-alpha - C S2."""
    return L0 + A * np.asarray(S1, float) ** (-alpha) - C * np.asarray(S2, float)


class MPLTerms:
    """Precomputed sums for the multi-power law at given observation steps.

    The loss-drop term sums over every step k where the rate changed; steps are grouped
    into at most ``max_blocks`` blocks (split at every observation step, so no block
    straddles one) and each block is evaluated at its decrement-weighted centre.
    """

    def __init__(self, schedule: Any, obs_steps: np.ndarray, max_blocks: int | None = 256,
                 convention: str = "printed"):
        cum = schedule.cumulative()
        obs = np.asarray(obs_steps, dtype=int)
        self.S = cum[obs]  # S1(t) + S_W: the whole area up to t
        dec = decrements(schedule, convention)
        if max_blocks is None:  # exact: one block per step with a change
            max_blocks = max(1, int(np.count_nonzero(dec)))
        ks = np.flatnonzero(dec != 0) + 1  # 1-based steps with a change
        if len(ks) == 0:
            self.delta = np.zeros(0)
            self.eta = np.zeros(0)
            self.Sk = np.zeros((len(obs), 0))
            return
        # block boundaries: equal counts, plus every observation step
        n_blocks = min(max_blocks, len(ks))
        cuts = set(np.unique(np.linspace(0, len(ks), n_blocks + 1).astype(int)).tolist())
        cuts |= set(np.searchsorted(ks, obs, side="right").tolist())
        cuts = np.array(sorted(c for c in cuts if 0 <= c <= len(ks)))
        deltas, centres = [], []
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b <= a:
                continue
            kk = ks[a:b]
            w = dec[kk - 1]
            tot = w.sum()
            deltas.append(tot)
            centres.append(int(round(np.average(kk, weights=np.abs(w)))) if np.abs(w).sum() > 0 else int(kk[0]))
            if not kk[0] <= centres[-1] <= kk[-1]:
                centres[-1] = int(kk[len(kk) // 2])
        self.delta = np.array(deltas)
        k = np.array(centres)
        self.eta = schedule.lr[k - 1]
        self.first = np.array([ks[a] for a, b in zip(cuts[:-1], cuts[1:]) if b > a])
        # S_k(t) = sum_{tau=k}^{t} eta_tau, zero (and masked) for blocks after t
        Sk = cum[obs][:, None] - cum[k - 1][None, :]
        self.mask = (self.first[None, :] <= obs[:, None]).astype(float)
        self.Sk = np.where(self.mask > 0, np.maximum(Sk, 0.0), 0.0)

    def loss_drop(self, B, C, beta, gamma):
        if self.delta.size == 0:
            return np.zeros(len(self.S))
        eta = np.maximum(self.eta, 1e-300)
        x = eta[None, :] ** (-gamma) * self.Sk
        G = 1.0 - (C * x + 1.0) ** (-beta)
        return B * (G * self.mask) @ self.delta

    def loss_drop_jac(self, B, C, beta, gamma):
        """LD and its derivatives with respect to (B, C, beta, gamma)."""
        n = len(self.S)
        if self.delta.size == 0:
            return np.zeros(n), np.zeros((n, 4))
        eta = np.maximum(self.eta, 1e-300)
        x = eta[None, :] ** (-gamma) * self.Sk
        u = C * x + 1.0
        p = u ** (-beta)
        wd = self.mask * self.delta[None, :]
        g_sum = ((1.0 - p) * wd).sum(axis=1)
        dG_dx = beta * C * p / u
        J = np.empty((n, 4))
        J[:, 0] = g_sum
        J[:, 1] = B * ((beta * p / u * x) * wd).sum(axis=1)
        J[:, 2] = B * ((p * np.log(u)) * wd).sum(axis=1)
        J[:, 3] = B * ((dG_dx * x * -np.log(eta)[None, :]) * wd).sum(axis=1)
        return B * g_sum, J


def luo_multipower(schedule: Any, steps, L0, A, alpha, B, C, beta, gamma, max_blocks: int | None = 256,
                   convention: str = "printed"):
    """Luo et al. 2025 multi-power law at ``steps`` of ``schedule``:
    L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t) (see :mod:`analysis.fitting.curves`), with the
    loss-drop sum over the steps :data:`CONVENTIONS` says (``max_blocks=None``: exact)."""
    terms = MPLTerms(schedule, np.asarray(steps, dtype=int), max_blocks, convention)
    return L0 + A * terms.S ** (-alpha) - terms.loss_drop(B, C, beta, gamma)


# ---------------------------------------------------------------------- fitting


@dataclass(frozen=True, eq=False)
class ScheduleLaw:
    """A loss-curve law over a learning-rate schedule.

    ``prepare(schedule, steps, lam, max_blocks)`` precomputes what the law needs at the
    observed steps of one curve; ``predict(p, part)`` and ``jacobian(p, part)`` use it.
    ``start_grid`` holds values of the ``nonlinear`` parameters; for each, ``basis`` gives
    the columns that multiply the ``linear`` ones, which non-negative least squares then
    fits (variable projection).
    """

    name: str
    params: tuple[str, ...]
    linear: tuple[str, ...]
    nonlinear: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    citation: str
    formula: str
    start_grid: tuple
    prepare: Callable
    predict: Callable
    jacobian: Callable
    basis: Callable
    uses_lambda: bool = False
    #: the law's loss-drop term can be read under several :data:`CONVENTIONS`
    has_convention: bool = False

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        return {p: (lo, hi) for p, lo, hi in zip(self.params, self.lower, self.upper)}

    def assemble(self, lin, nonlinear) -> np.ndarray:
        """The parameter vector, in ``params`` order, from its linear and nonlinear parts."""
        given = dict(zip(self.linear, lin)) | dict(zip(self.nonlinear, nonlinear))
        return np.array([given[p] for p in self.params])

    def predict_steps(self, params: dict, schedule: Any, steps, lam: float = TISSUE_LAMBDA,
                      max_blocks: int | None = 256, convention: str = "printed") -> np.ndarray:
        """Loss at ``steps`` (1-based) of a per-step schedule."""
        part = self.prepare(schedule, np.asarray(steps, dtype=int), lam, max_blocks, convention)
        return self.predict(np.array([params[p] for p in self.params]), part)


# ------------------------------------------------------------------ Tissue et al. 2024

def _ann_prepare(schedule, steps, lam, max_blocks, convention="printed"):
    s1, s2 = annealing_areas(schedule, lam)
    return s1[steps - 1], s2[steps - 1]


def _ann_predict(p, part):
    L0, A, alpha, C = p
    return tissue_annealing(part[0], part[1], L0, A, alpha, C)


def _ann_jacobian(p, part):
    L0, A, alpha, C = p
    s1, s2 = part
    pw = s1 ** (-alpha)
    return np.column_stack([np.ones_like(s1), pw, -A * pw * np.log(s1), -s2])


def _ann_basis(nonlinear, parts):
    (alpha,) = nonlinear
    S1 = np.concatenate([s1 for s1, _ in parts])
    S2 = np.concatenate([s2 for _, s2 in parts])
    return np.column_stack([np.ones_like(S1), S1 ** (-alpha), -S2])


ANNEALING = ScheduleLaw(
    "annealing", ("L0", "A", "alpha", "C"), linear=("L0", "A", "C"), nonlinear=("alpha",),
    lower=(0.0, 0.0, 0.0, 0.0), upper=(20.0, np.inf, 5.0, np.inf),
    citation="Tissue et al. 2024, Scaling Law with Learning Rate Annealing, eq. (1)",
    formula="L(s) = L0 + A S1^-alpha - C S2",
    start_grid=tuple((a,) for a in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)),
    prepare=_ann_prepare, predict=_ann_predict, jacobian=_ann_jacobian, basis=_ann_basis, uses_lambda=True,
)


# ------------------------------------------------------------------ Luo et al. 2025

def _mpl_prepare(schedule, steps, lam, max_blocks, convention="printed"):
    return MPLTerms(schedule, steps, max_blocks, convention)


def _mpl_predict(p, t):
    L0, A, alpha, B, C, beta, gamma = p
    return L0 + A * t.S ** (-alpha) - t.loss_drop(B, C, beta, gamma)


def _mpl_jacobian(p, t):
    L0, A, alpha, B, C, beta, gamma = p
    pw = t.S ** (-alpha)
    _, J = t.loss_drop_jac(B, C, beta, gamma)
    return np.column_stack([np.ones_like(t.S), pw, -A * pw * np.log(t.S), -J[:, 0], -J[:, 1], -J[:, 2], -J[:, 3]])


def _mpl_basis(nonlinear, parts):
    alpha, C, beta, gamma = nonlinear
    S = np.concatenate([t.S for t in parts])
    LD = np.concatenate([t.loss_drop(1.0, C, beta, gamma) for t in parts])
    return np.column_stack([np.ones_like(S), S ** (-alpha), -LD])


MULTIPOWER = ScheduleLaw(
    "multipower", ("L0", "A", "alpha", "B", "C", "beta", "gamma"), linear=("L0", "A", "B"),
    nonlinear=("alpha", "C", "beta", "gamma"),
    lower=(0.0,) * 7, upper=(20.0, np.inf, 5.0, np.inf, np.inf, 5.0, 5.0),
    citation="Luo et al. 2025, A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules",
    formula="L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t)",
    start_grid=tuple((a, c, b, g) for a in (0.2, 0.5, 1.0) for c in (0.3, 1.0, 3.0, 10.0)
                     for b in (0.3, 0.6, 1.0) for g in (0.3, 0.6)),
    prepare=_mpl_prepare, predict=_mpl_predict, jacobian=_mpl_jacobian, basis=_mpl_basis, has_convention=True,
)

#: Schedule laws by name.
SCHEDULE_LAWS = {obj.name: obj for obj in (ANNEALING, MULTIPOWER)}

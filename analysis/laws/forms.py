"""The parametrisations the fitter works in, one per shape of law.

A form is a law written in a well-conditioned internal parametrisation theta, with its
log-prediction vectorised over many theta at once (for grid evaluation), its Jacobian for
one theta (for L-BFGS and the covariance), the map back to the law's own parameters and a
start grid. Inputs are the data's logs: x = log N, y = log D, c = log C, u = log U
(unique tokens).

* :class:`LSEForm`: sums of power terms and a constant (Hoffmann et al. 2022 eq. 2 and its
  relatives) as a log-sum-exp of affine functions of theta;
* :class:`KaplanNDForm`: Kaplan et al. 2020 eq. (1.5);
* :class:`GenericForm`: any law's numpy function, with numerical derivatives, for laws
  that bring no form of their own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Callable

import numpy as np

__all__ = ["LSEForm", "KaplanNDForm", "GenericForm", "EPOCH_GRID", "epoch_grid", "gadre_grid",
           "single_power_form", "LOG_INPUTS"]

def _exp(x: float) -> float:
    return math.exp(x) if x < 709.0 else math.inf


#: Law input -> the key of its logarithm in a form's inputs.
LOG_INPUTS = {"N": "x", "D": "y", "C": "c", "U": "u"}

#: Exponent values tried by :meth:`LSEForm.linear_starts`, for each exponent of the form:
#: the range published scaling exponents fall in, finely enough that L-BFGS starts in the
#: right basin.
LINEAR_EXPONENTS = np.arange(0.05, 1.5001, 0.05)

#: Forms with more exponents than this get no linear starts (30^3 solves would cost more
#: than the fit).
MAX_LINEAR_EXPONENTS = 2


@dataclass(frozen=True)
class LSEForm:
    """log L_hat = LSE_k( theta[coef_k] - sum_j theta[exp_kj] * log x_kj ).

    Chinchilla, the over-training law and the saturating power law are sums of power
    terms and a constant, so their log is a log-sum-exp of affine functions of theta:
    exact, overflow-free, and with softmax weights as gradient.
    """

    law: str
    theta_names: tuple[str, ...]
    # per term: (index of its coefficient, ((index of exponent, input name), ...))
    terms: tuple[tuple[int, tuple[tuple[int, str], ...]], ...]
    inputs: tuple[str, ...]
    to_natural: Callable
    from_natural: Callable
    grid: Callable  # X -> (G, p) array of starting points
    bounds: tuple[tuple[float | None, float | None], ...]

    def logpred(self, theta, X):
        theta = np.atleast_2d(theta)
        T = []
        for coef, exps in self.terms:
            t = np.repeat(theta[:, coef:coef + 1], X[self.inputs[0]].shape[0], axis=1)
            for ei, name in exps:
                t = t - theta[:, ei:ei + 1] * X[name][None, :]
            T.append(t)
        out = T[0]
        for t in T[1:]:
            out = np.logaddexp(out, t)
        return out

    def logpred_jac(self, theta, X):
        n = X[self.inputs[0]].shape[0]
        T = np.empty((len(self.terms), n))
        for k, (coef, exps) in enumerate(self.terms):
            t = np.full(n, theta[coef])
            for ei, name in exps:
                t -= theta[ei] * X[name]
            T[k] = t
        m = T.max(axis=0)
        w = np.exp(T - m)
        s = w.sum(axis=0)
        pred = m + np.log(s)
        w /= s
        J = np.zeros((n, len(theta)))
        for k, (coef, exps) in enumerate(self.terms):
            J[:, coef] += w[k]
            for ei, name in exps:
                J[:, ei] -= w[k] * X[name]
        return pred, J

    def linear_starts(self, X, logy, values=None, max_cells: int = 2_000_000) -> np.ndarray:
        """Start points from linear solves (variable projection, Golub and Pereyra 1973):
        with its exponents fixed, a sum of power terms and a constant is linear in its
        coefficients, so for every combination of exponents on the grid ``values`` (default
        :data:`LINEAR_EXPONENTS`) weighted least squares (weights 1/L, so that residuals are
        relative, as the log-loss objective's are) gives the coefficients at once. Rows whose
        coefficients are all positive come back as theta; none for a form with more than
        :data:`MAX_LINEAR_EXPONENTS` exponents (the combinations would not be few).

        Why: a fixed grid can miss where the data live. Runs of a few hundred billion
        tokens put every grid point's data term at e^(b - beta log D) with log D near 26,
        either far above the loss or e^-27 below it; L-BFGS started where a term is that
        small sees no gradient for it and stops with the term switched off."""
        exp_idx = sorted({ei for _, exps in self.terms for ei, _ in exps})
        if len(exp_idx) > MAX_LINEAR_EXPONENTS:
            return np.empty((0, len(self.theta_names)))
        values = LINEAR_EXPONENTS if values is None else np.asarray(values, dtype=float)
        combos = np.array(list(product(values, repeat=len(exp_idx)))).reshape(-1, len(exp_idx))
        weight = np.exp(-np.asarray(logy, dtype=float))          # 1/L: relative residuals
        coef = np.full((len(combos), len(self.terms)), np.nan)
        step = max(1, max_cells // max(1, len(weight) * len(self.terms)))  # bounded memory on large tables
        for i in range(0, len(combos), step):
            part = combos[i:i + step]
            cols = []
            for _, exps in self.terms:                           # each term's value at coefficient 1
                t = np.zeros((len(part), len(weight)))
                for ei, name in exps:
                    t = t - part[:, [exp_idx.index(ei)]] * np.asarray(X[name], dtype=float)[None, :]
                cols.append(np.exp(t) * weight[None, :])
            M = np.stack(cols, axis=2)                           # (combos, points, terms)
            gram = np.einsum("gnt,gnu->gtu", M, M)
            rhs = M.sum(axis=1)                                  # M^T (L / L)
            with np.errstate(all="ignore"):
                ok = np.abs(np.linalg.det(gram)) > 0
                if ok.any():
                    block = np.full(rhs.shape, np.nan)
                    block[ok] = np.linalg.solve(gram[ok], rhs[ok][..., None])[..., 0]
                    coef[i:i + step] = block
        ok = np.all(np.isfinite(coef) & (coef > 0), axis=1)
        rows = np.zeros((int(ok.sum()), len(self.theta_names)))
        for t, (ci, _) in enumerate(self.terms):
            rows[:, ci] = np.log(coef[ok, t])
        for j, ei in enumerate(exp_idx):
            rows[:, ei] = combos[ok, j]
        return rows

    def centered(self, theta, X):
        """theta with each term's coefficient replaced by the term's value at the data's
        mean log inputs: the coordinates in which identifiability is judged."""
        theta = np.asarray(theta, dtype=float).copy()
        for coef, exps in self.terms:
            for ei, name in exps:
                theta[coef] -= theta[ei] * float(np.mean(X[name]))
        return theta


@dataclass(frozen=True)
class KaplanNDForm:
    """Kaplan et al. 2020 eq. (1.5) in logs: log L = alpha_D * LSE(p (u - x), v - y),
    p = alpha_N / alpha_D, u = log N_c, v = log D_c, x = log N, y = log D."""

    law: str = "kaplan_nd"
    theta_names: tuple[str, ...] = ("log_N_c", "log_D_c", "alpha_N", "alpha_D")
    inputs: tuple[str, ...] = ("x", "y")
    bounds: tuple = ((None, None), (None, None), (1e-4, 2.0), (1e-4, 2.0))

    @staticmethod
    def to_natural(t):
        # a loss that does not fall drives the scales past float range: inf, which fit_law refuses by name
        return {"N_c": _exp(t[0]), "D_c": _exp(t[1]), "alpha_N": t[2], "alpha_D": t[3]}

    @staticmethod
    def from_natural(p):
        return np.array([math.log(p["N_c"]), math.log(p["D_c"]), p["alpha_N"], p["alpha_D"]])

    @staticmethod
    def grid(X):
        # log N_c - log N = log(L)/alpha_N: with L of a few nats and exponents 0.03..0.5,
        # log N_c lies some 2..50 above the data's log N.
        xm, ym = float(np.mean(X["x"])), float(np.mean(X["y"]))
        offs = np.array([2.0, 6.0, 15.0, 40.0])
        exps = np.array([0.03, 0.08, 0.2, 0.5])
        return np.array([(xm + du, ym + dv, an, ad) for du, dv, an, ad in product(offs, offs, exps, exps)])

    def logpred(self, theta, X):
        theta = np.atleast_2d(theta)
        u, v, an, ad = (theta[:, i:i + 1] for i in range(4))
        t1 = an / ad * (u - X["x"][None, :])
        t2 = v - X["y"][None, :]
        return ad * np.logaddexp(t1, t2)

    def logpred_jac(self, theta, X):
        u, v, an, ad = theta
        p = an / ad
        t1 = p * (u - X["x"])
        t2 = v - X["y"]
        s = np.logaddexp(t1, t2)
        w1 = np.exp(t1 - s)
        w2 = 1.0 - w1
        J = np.empty((len(t1), 4))
        J[:, 0] = an * w1
        J[:, 1] = ad * w2
        J[:, 2] = w1 * (u - X["x"])
        J[:, 3] = s - w1 * p * (u - X["x"])
        return ad * s, J

    def centered(self, theta, X):
        # log of each term's contribution at the data's centre, (N_c/N)^alpha_N and (D_c/D)^alpha_D
        u, v, an, ad = theta
        return np.array([an * (u - np.mean(X["x"])), ad * (v - np.mean(X["y"])), an, ad])


def epoch_grid() -> np.ndarray:
    """The 4,500-point initialisation grid of Besiroglu et al. 2024 (their data_analysis
    notebook) in (e, a, b, alpha, beta) order: alpha, beta in {0, 0.5, ..., 2},
    e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}."""
    alpha = beta = np.arange(0.0, 2.01, 0.5)
    e = np.arange(-1.0, 1.01, 0.5)
    a = b = np.arange(0.0, 25.1, 5.0)
    return np.array([(ee, aa, bb, al, be) for al, be, ee, aa, bb in product(alpha, beta, e, a, b)])


#: (e, a, b, alpha, beta) rows of the replication's grid (4,500 points).
EPOCH_GRID = epoch_grid()


def gadre_grid(X) -> np.ndarray:
    e = np.arange(-1.0, 1.01, 0.5)
    a = b = np.arange(0.0, 25.1, 5.0)
    eta = np.array([0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0])
    return np.array([(ee, aa, bb, et) for ee, aa, bb, et in product(e, a, b, eta)])


def single_power_grid(name):
    def grid(X):
        # log L = k - alpha * log X: start from the least-squares line and a few exponents.
        x = X[name]
        y = X["_logy"]
        slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(np.mean(y)))
        rows = [(intercept, max(-slope, 1e-3))]
        for al in (0.02, 0.05, 0.1, 0.3, 0.7):
            rows.append((float(np.mean(y)) + al * float(np.mean(x)), al))
        return np.array(rows)
    return grid


def single_power_form(law: str, inp: str, scale_name: str, exp_name: str) -> LSEForm:
    # (C_x / X)^alpha = exp(k - alpha log X) with k = alpha log C_x: affine in (k, alpha),
    # so the Huber objective is convex and has one optimum.
    def to_nat(t):
        k, al = float(t[0]), float(t[1])
        # A loss that barely falls drives alpha to 0 and the scale past float range;
        # report that as inf (fit_law then refuses the fit by name) rather than overflow.
        ratio = k / al if al > 0 else math.inf
        return {scale_name: math.exp(ratio) if ratio < 700 else math.inf, exp_name: al}

    def from_nat(p):
        return np.array([p[exp_name] * math.log(p[scale_name]), p[exp_name]])

    return LSEForm(law, ("k", exp_name), ((0, ((1, inp),)),), (inp,), to_nat, from_nat,
                   single_power_grid(inp), ((None, None), (1e-6, 2.0)))


class GenericForm:
    """Any law, fitted through its own numpy function.

    theta is the law's parameters, with each positive scale constant (lower bound 0, no
    upper bound) replaced by its logarithm so that L-BFGS sees values of order one. The
    Jacobian is central differences, which is all a law without a form of its own needs:
    the fitter's cost is in the grid evaluation, done here row by row. ``centered`` is the
    identity: without term structure there are no term values to centre.
    """

    def __init__(self, law: str, fn: Callable, params: tuple, inputs: tuple, bounds: dict, start_grid):
        self.law = law
        self.fn = fn
        self.params = tuple(params)
        self.law_inputs = tuple(inputs)
        self.inputs = tuple(LOG_INPUTS[k] for k in inputs)
        box = {p: tuple(bounds.get(p, (-math.inf, math.inf))) for p in self.params}
        self.logged = tuple(p for p in self.params if box[p][0] == 0 and not math.isfinite(box[p][1]))
        self.theta_names = tuple(f"log_{p}" if p in self.logged else p for p in self.params)
        self.bounds = tuple((None, None) if p in self.logged else
                            tuple(float(b) if math.isfinite(b) else None for b in box[p]) for p in self.params)
        self._start = start_grid

    @classmethod
    def for_law(cls, law) -> "GenericForm":
        return cls(law.name, law.fn, law.params, law.inputs, law.bounds, law.start_grid)

    def to_natural(self, theta) -> dict:
        return {p: (math.exp(float(t)) if p in self.logged else float(t)) for p, t in zip(self.params, theta)}

    def from_natural(self, p) -> np.ndarray:
        return np.array([math.log(p[k]) if k in self.logged else float(p[k]) for k in self.params])

    def grid(self, X) -> np.ndarray:
        """Start points: the law's ``start_grid`` (rows of natural parameter values, or a
        callable of the log inputs returning them), in theta coordinates."""
        rows = self._start(X) if callable(self._start) else self._start
        return np.array([self.from_natural(dict(zip(self.params, r))) for r in np.atleast_2d(rows)])

    def _one(self, theta, X) -> np.ndarray:
        # numpy scalars, so that a division by zero at the edge of the box gives inf or NaN
        # (which the objective scores as infinitely bad) instead of raising
        args = [np.exp(X[k]) for k in self.inputs]
        with np.errstate(all="ignore"):
            try:
                p = {k: np.float64(v) for k, v in self.to_natural(theta).items()}
                return np.log(np.asarray(self.fn(*args, **p), dtype=float))
            except (ArithmeticError, ValueError):
                return np.full(len(args[0]), np.nan)

    def logpred(self, theta, X):
        theta = np.atleast_2d(theta)
        return np.vstack([self._one(t, X) for t in theta])

    def logpred_jac(self, theta, X):
        theta = np.asarray(theta, dtype=float)
        pred = self._one(theta, X)
        J = np.empty((len(pred), len(theta)))
        for j in range(len(theta)):
            h = 1e-6 * max(1.0, abs(theta[j]))
            tp, tm = theta.copy(), theta.copy()
            tp[j] += h
            tm[j] -= h
            J[:, j] = (self._one(tp, X) - self._one(tm, X)) / (2 * h)
        return pred, J

    def centered(self, theta, X):
        return np.asarray(theta, dtype=float)

"""Uncertainty of a robust fit at its optimum: Huber's asymptotic covariance, intervals
from standard errors, and the warnings a fit prints about itself.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .result import bound_warnings, correlation_warnings, uncertainty_warnings

__all__ = ["fit_warnings", "asymptotic_ci", "asymptotic_uncertainty", "cluster_covariance", "SCALE_PARAMS"]

#: Positive scale constants, fitted through their logarithms.
SCALE_PARAMS = frozenset({"E", "A", "B", "N_c", "D_c", "C_c"})


def fit_warnings(params: dict, stderr: dict, centred_correl: dict, bounds: dict) -> list[str]:
    """Bound hits, unidentifiable pairs and poorly determined parameters (a parameter at a
    bound is reported once, as such)."""
    at_bound = bound_warnings(params, bounds)
    hit = {w.split()[1] for w in at_bound}
    rest = {p: v for p, v in params.items() if p not in hit}
    return at_bound + correlation_warnings(centred_correl) + uncertainty_warnings(rest, stderr)


def asymptotic_ci(params: dict, stderr: dict, level: float) -> dict:
    """Normal intervals from standard errors; log-symmetric (never below zero) for the
    positive scale constants, which are fitted through their logarithms."""
    z = _normal_quantile(0.5 + level / 2)
    ci = {}
    for p, v in params.items():
        se = stderr.get(p)
        if se is None or not math.isfinite(se):
            continue
        if p in SCALE_PARAMS and v > 0:
            with np.errstate(over="ignore"):
                ci[p] = (float(v * np.exp(-z * se / v)), float(v * np.exp(z * se / v)))
        else:
            ci[p] = (v - z * se, v + z * se)
    return ci


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def _smoothed_inlier_rate(r: np.ndarray, delta: float) -> tuple[float, float]:
    """Mean and variance of psi'(r) = 1{|r| <= delta}, smoothed with a Gaussian kernel
    (Silverman bandwidth on the robust scale of r): with delta = 1e-3 only a handful of
    residuals fall inside delta, too few to count."""
    from scipy.stats import norm

    scale = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    h = 1.06 * max(scale, delta) * len(r) ** (-0.2)
    d = norm.cdf((delta - r) / h) - norm.cdf((-delta - r) / h)
    return float(d.mean()), float(d.var())


def asymptotic_uncertainty(form, theta, X, logy, delta, names):
    """Standard errors and correlations of the natural parameters, plus correlations in
    centred coordinates: Huber's asymptotic covariance, computed by lmfit.

    The covariance of a Huber M-estimate is (Huber 1981, Robust Statistics, Sec. 7.6)

        K^2 * [sum psi(r)^2 / (n - p)] / m^2 * (J^T J)^-1,   m = mean psi'(r),
        K = 1 + (p / n) Var(psi') / m^2.

    Least squares on Huber's pseudo-observations y* = log L_hat - psi(r) / m (Sec. 7.7)
    has, at the same optimum, exactly that covariance without K^2; lmfit fits them within
    the law's bounds and returns it. (lmfit's own covariance for a robust ``least_squares``
    fit is not used: it mixes robustly reweighted Jacobians with an unweighted chi-square
    and at delta = 1e-3 overstates standard errors several-fold.)
    """
    import lmfit

    stderr = {p: None for p in names}
    theta = np.asarray(theta, float)
    pred, J = form.logpred_jac(theta, X)
    r = pred - logy
    n, k = J.shape
    m, v = _smoothed_inlier_rate(r, delta)
    singular = ("the covariance matrix is singular: some parameters are not identifiable from these data "
                "(see the bootstrap intervals)")
    if n <= k or m <= 0:
        return stderr, {}, {}, singular
    ystar = pred - np.clip(r, -delta, delta) / m
    lo = [-np.inf if b[0] is None else b[0] for b in form.bounds]
    hi = [np.inf if b[1] is None else b[1] for b in form.bounds]
    pars = lmfit.Parameters()
    for i, nm in enumerate(form.theta_names):
        span = 1e-9 * max(1.0, abs(theta[i]))  # least_squares needs a start strictly inside the box
        pars.add(nm, value=float(np.clip(theta[i], lo[i] + span, hi[i] - span)), min=lo[i], max=hi[i])

    def vec(p):
        return np.array([p[nm].value for nm in form.theta_names])

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = lmfit.minimize(lambda p: form.logpred(vec(p), X)[0] - ystar, pars, method="least_squares",
                                 jac=lambda p: form.logpred_jac(vec(p), X)[1], max_nfev=100)
    except Exception as e:  # lmfit raises a variety of errors on degenerate problems
        return stderr, {}, {}, f"standard errors unavailable ({type(e).__name__}: {e})"
    cov = getattr(res, "covar", None)
    if cov is None or not np.all(np.isfinite(cov)) or len(res.var_names) != k:
        return stderr, {}, {}, singular
    K = 1.0 + (k / n) * v / m ** 2
    cov = K * K * np.asarray(cov)
    H = _natural_jacobian(form, theta, names)
    cov_nat = H @ cov @ H.T
    Hc = _numeric_jacobian(lambda t: form.centered(t, X), theta)
    cov_c = Hc @ cov @ Hc.T
    sd = np.sqrt(np.clip(np.diag(cov_nat), 0, None))
    stderr = {p: float(sd[i]) for i, p in enumerate(names)}
    correl = _correl_dict(cov_nat, names)
    # centred coordinates are ordered like theta; name them by the natural parameter they carry
    cent = _correl_dict(cov_c, _theta_to_natural_names(form, names))
    return stderr, correl, cent, None


def _theta_to_natural_names(form, names):
    mapping = {"e": "E", "a": "A", "b": "B", "k": None, "log_N_c": "N_c", "log_D_c": "D_c"}
    out = []
    for i, t in enumerate(form.theta_names):
        nm = mapping.get(t, t)
        if nm is None:  # single power laws: k carries the scale constant
            nm = [p for p in names if p not in form.theta_names][0]
        out.append(nm)
    return out


def _correl_dict(cov, names):
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    out = {}
    for i, p in enumerate(names):
        out[p] = {}
        for j, q in enumerate(names):
            if i != j and sd[i] > 0 and sd[j] > 0:
                out[p][q] = float(np.clip(cov[i, j] / (sd[i] * sd[j]), -1, 1))
    return out


def _natural_jacobian(form, theta, names) -> np.ndarray:
    """d(natural parameters ``names``) / d(theta) at ``theta``, by central differences."""
    return _numeric_jacobian(lambda t: np.array([form.to_natural(t)[p] for p in names]), theta)


def _numeric_jacobian(fn, x, h=1e-6):
    x = np.asarray(x, dtype=float)
    f0 = np.asarray(fn(x), dtype=float)
    J = np.empty((len(f0), len(x)))
    for j in range(len(x)):
        step = h * max(1.0, abs(x[j]))
        xp, xm = x.copy(), x.copy()
        xp[j] += step
        xm[j] -= step
        J[:, j] = (np.asarray(fn(xp)) - np.asarray(fn(xm))) / (2 * step)
    return J


def cluster_covariance(form, theta, X, logy, delta, names, groups) -> np.ndarray | None:
    """Cluster-robust covariance of the natural parameters (Liang and Zeger 1986): Huber's
    sandwich A^-1 B A^-1 with A = m J^T J (m the mean of psi'(r), smoothed as in
    :func:`asymptotic_uncertainty`) and B the outer products of the scores psi(r_i) J_i
    summed within each group (``groups``: one label per point), scaled by G / (G - 1) x
    (n - 1) / (n - p) for G groups, n points and p parameters (the usual CR1 factor). Points
    of one run share its training noise, so they are not independent draws; the groups are
    what is. None when the scores cannot say (fewer than two groups, no inliers)."""
    theta = np.asarray(theta, float)
    pred, J = form.logpred_jac(theta, X)
    r = pred - logy
    n, k = J.shape
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    G = len(labels)
    m, _ = _smoothed_inlier_rate(r, delta)
    if G < 2 or n <= k or m <= 0:
        return None
    scores = np.clip(r, -delta, delta)[:, None] * J
    S = np.zeros((G, k))
    np.add.at(S, inverse, scores)
    B = S.T @ S * (G / (G - 1)) * ((n - 1) / (n - k))
    try:
        A_inv = np.linalg.inv(m * J.T @ J)
    except np.linalg.LinAlgError:
        return None
    H = _natural_jacobian(form, theta, names)
    cov = H @ A_inv @ B @ A_inv @ H.T
    return cov if np.all(np.isfinite(cov)) else None

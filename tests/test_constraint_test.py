"""The test of a law's constraint (Gadre et al.'s alpha = beta inside Chinchilla's law)
counts independent runs, not points: branches of one run share its training noise."""
import math

import numpy as np
import pandas as pd
from scipy.stats import norm, t

from analysis.fitting.fit import fit_law
from analysis.fitting.uncertainty import cluster_covariance
from analysis.laws import chinchilla, get_law
from analysis.selection.checks import REJECT_Z, constraint_test, reject_threshold

#: a Chinchilla-form law whose exponents are equal: the constraint holds
SHARED = dict(E=1.8, A=400.0, B=1200.0, alpha=0.31, beta=0.31)
SIZES, TPPS = np.geomspace(4.8e7, 5.43e8, 5), (20, 40, 80, 108, 160)


def _branched(seed: int) -> pd.DataFrame:
    """Five runs, one per size, each read at five budgets (no run column); each run is off
    the law by its own 0.5%, shared by its points, which add 0.15% each."""
    rng = np.random.default_rng(seed)
    N, D = np.array([(n, m * n) for n in SIZES for m in TPPS]).T
    offset = np.repeat(rng.normal(0, 0.005, len(SIZES)), len(TPPS))
    loss = chinchilla(N, D, **SHARED) * np.exp(offset + rng.normal(0, 0.0015, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss})


def test_on_branched_runs_of_a_law_whose_constraint_holds_the_test_rejects_it_at_about_its_level():
    # The plain Wald statistic treats 25 points as 25 independent draws: on ladders whose
    # exponents are equal by construction it rejects alpha = beta in 6 of 20 seeds (the bar,
    # 3 standard errors, means 0.27%). Counting the five runs, it rejects none.
    gadre = get_law("gadre2024")
    plain = counted = 0
    for seed in range(20):
        fit = fit_law(_branched(seed), "chinchilla", progress=False)
        sa, sb, r = fit.stderr["alpha"], fit.stderr["beta"], fit.correl["alpha"]["beta"]
        plain += abs(fit.params["alpha"] - fit.params["beta"]) / math.sqrt(sa * sa + sb * sb - 2 * r * sa * sb) > 3
        test = constraint_test(fit, gadre)
        assert (test.units, test.unit) == (5, "model sizes")
        counted += test.rejected
    assert plain >= 4
    assert counted <= 1


def test_the_bar_is_students_t_at_the_same_level_for_as_many_units():
    level = 2 * norm.sf(REJECT_Z)
    for units in (5, 12, 40):
        assert math.isclose(reject_threshold(units), t.isf(level / 2, units - 1), rel_tol=1e-12)
    assert 6.5 < reject_threshold(5) < 6.7 and 3.0 < reject_threshold(1000) < 3.01
    assert reject_threshold(None) == REJECT_Z and reject_threshold(1) == math.inf


def test_a_run_column_sets_the_units():
    df = _branched(0)
    fit = fit_law(df.assign(run=np.arange(len(df))), "chinchilla", progress=False)
    assert fit.meta["units"] == {"unit": "runs", "count": 25}
    assert constraint_test(fit, get_law("gadre2024")).threshold == reject_threshold(25)


def test_cluster_covariance_against_a_direct_computation():
    # Huber's sandwich with scores summed by group, written out again point by point: a
    # finite-difference Jacobian of the form's log prediction, the clipped residuals, the
    # smoothed inlier rate, and the chain rule to the natural parameters.
    from analysis.fitting.optimize import HUBER_DELTA
    from analysis.fitting.uncertainty import _smoothed_inlier_rate

    df = _branched(3)
    law = get_law("chinchilla")
    form = law.form
    X = {"x": np.log(df["params"].to_numpy()), "y": np.log(df["tokens"].to_numpy())}
    logy = np.log(df["loss"].to_numpy())
    fit = fit_law(df, "chinchilla", progress=False)
    theta = np.asarray(fit.meta["theta"])
    groups = np.repeat(np.arange(5), 5)
    got = cluster_covariance(form, theta, X, logy, HUBER_DELTA, law.params, groups)

    k, n, h = len(theta), len(logy), 1e-6
    J = np.empty((n, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        J[:, j] = (form.logpred(theta + e, X)[0] - form.logpred(theta - e, X)[0]) / (2 * h)
    r = form.logpred(theta, X)[0] - logy
    m = _smoothed_inlier_rate(r, HUBER_DELTA)[0]
    bread = np.linalg.inv(m * sum(np.outer(J[i], J[i]) for i in range(n)))
    meat = np.zeros((k, k))
    for g in range(5):
        s = sum(min(max(r[i], -HUBER_DELTA), HUBER_DELTA) * J[i] for i in range(n) if groups[i] == g)
        meat += np.outer(s, s)
    meat *= 5 / 4 * (n - 1) / (n - k)
    H = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        up, down = form.to_natural(theta + e), form.to_natural(theta - e)
        H[:, j] = [(up[p] - down[p]) / (2 * h) for p in law.params]
    want = H @ bread @ meat @ bread @ H.T
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-12 * np.abs(want).max())
    # and the fit stores the same, over the same five sizes (no run column)
    np.testing.assert_allclose(np.asarray(fit.meta["cluster_covariance"]), want, rtol=1e-4,
                               atol=1e-12 * np.abs(want).max())


def test_a_point_without_a_run_shares_it_with_no_other():
    # A run column with blanks: the named runs are units, and so is each unnamed point (a
    # table like this once raised a TypeError from sorting a float among strings).
    df = _branched(0)
    run = np.array([f"r{i // 5}" for i in range(len(df))], dtype=object)
    run[::3] = None
    fit = fit_law(df.assign(run=run), "chinchilla", progress=False)
    named = {r for r in run if r is not None}
    assert fit.meta["units"] == {"unit": "runs", "count": len(named) + int(np.sum(run == None))}  # noqa: E711
    assert np.isfinite(np.asarray(fit.meta["cluster_covariance"])).all()


def test_the_bootstrap_draws_a_blank_run_point_alone():
    from analysis.fitting.bootstrap import choose_resample

    df = _branched(0)
    run = np.array([f"r{i // 5}" for i in range(len(df))], dtype=object)
    run[[0, 6]] = None
    groups, unit, _, _ = choose_resample(df.assign(run=run), "chinchilla", "params", "runs", 0.9)
    assert unit == "runs"
    assert len(set(groups)) == 7  # five named runs and the two unnamed points
    assert sum(g == groups[0] for g in groups) == 1 and sum(g == groups[6] for g in groups) == 1

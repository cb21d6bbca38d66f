"""Chinchilla Approaches 1 and 2 and compute-optimal allocation against known laws."""
import numpy as np
import pandas as pd
import pytest

from analysis import laws
from analysis.fitting.allocation import compute_optimal
from analysis.fitting.approaches import approach1, approach2
from analysis.common.errors import InputError, TableError
from analysis.fitting.fit import fit_law
from analysis.data.published import besiroglu2024, hoffmann2022, kaplan2020
from analysis.fitting.result import AllocationFit
from analysis.fitting.io import load_result

TRUE = besiroglu2024().params
A_TRUE = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])  # N_opt ~ C^a (Hoffmann et al. 2022, eq. 4)
B_TRUE = TRUE["alpha"] / (TRUE["alpha"] + TRUE["beta"])


def isoflop(seed, noise=0.003):
    """6 budgets x 9 sizes spread 36x around each budget's optimum."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.geomspace(1e18, 1e21, 6):
        n_opt, _ = laws.chinchilla_optimal(C, **TRUE)
        for n in n_opt * np.geomspace(1 / 6, 6, 9):
            d = C / (6 * n)
            rows.append((n, d, laws.chinchilla(n, d, **TRUE) * np.exp(rng.normal(0, noise))))
    return pd.DataFrame(rows, columns=["params", "tokens", "loss"])


def curves(seed, noise=0.002):
    """16 runs from 20M to 5B parameters, each a loss curve over 1e8..5e11 tokens."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(np.geomspace(2e7, 5e9, 16)):
        for d in np.geomspace(1e8, 5e11, 40):
            rows.append((f"run{i}", n, d, laws.chinchilla(n, d, **TRUE) * np.exp(rng.normal(0, noise))))
    return pd.DataFrame(rows, columns=["run", "params", "tokens", "loss"])


def test_approach2_recovers_the_allocation_exponents():
    fit = approach2(isoflop(0), bootstrap=100, seed=0)
    assert fit.params["a"] == pytest.approx(A_TRUE, abs=0.02)
    assert fit.params["b"] == pytest.approx(B_TRUE, abs=0.02)
    assert fit.params["a"] + fit.params["b"] == pytest.approx(1.0, abs=1e-6)  # C = 6ND exactly
    lo, hi = fit.ci["a"]
    assert lo <= A_TRUE <= hi and hi - lo < 0.1
    assert fit.n_budgets == 6 and len(fit.points) == 6
    n_pred, d_pred = fit.predict(1e22)
    n_true, d_true = laws.chinchilla_optimal(1e22, **TRUE)
    assert n_pred == pytest.approx(n_true, rel=0.15) and d_pred == pytest.approx(d_true, rel=0.15)


def test_approach1_recovers_the_allocation_exponents_from_training_curves():
    fit = approach1(curves(1), bootstrap=30, seed=0)
    assert fit.params["a"] == pytest.approx(A_TRUE, abs=0.03)
    assert fit.params["b"] == pytest.approx(B_TRUE, abs=0.03)
    assert fit.samples.shape == (30, 4) and fit.ci["a"][0] < fit.ci["a"][1]
    assert any("FLOP values dropped" in n for n in fit.meta["notes"])
    # with a curve mapping instead of one table
    by_run = {k: g.drop(columns="run") for k, g in curves(1).groupby("run")}
    again = approach1(by_run, bootstrap=0)
    assert again.params["a"] == pytest.approx(fit.params["a"], rel=1e-12)


def test_approach2_refuses_data_without_isoflop_profiles():
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e9), 12))
    d = 20 * n * np.exp(rng.uniform(-3, 3, 12))
    df = pd.DataFrame({"params": n, "tokens": d, "loss": laws.chinchilla(n, d, **TRUE)})
    with pytest.raises(TableError, match="flops: .* usable IsoFLOP profile"):
        approach2(df)


def test_compute_optimal_matches_brute_force_and_carries_intervals():
    C = np.array([1e21, 5.76e23])
    r = compute_optimal(hoffmann2022(), C)
    for i, c in enumerate(C):
        n = np.geomspace(1e8, 1e13, 200001)
        brute = n[np.argmin(laws.chinchilla(n, c / (6 * n), **hoffmann2022().params))]
        assert r["n_opt"][i] == pytest.approx(brute, rel=1e-3)
    np.testing.assert_allclose(6 * r["n_opt"] * r["d_opt"], C, rtol=1e-10)
    np.testing.assert_allclose(r["tokens_per_param"], r["d_opt"] / r["n_opt"])
    # Kaplan's joint law has no closed form: the numerical optimum against brute force
    k = compute_optimal(kaplan2020(), 1e21)
    n = np.geomspace(1e6, 1e13, 400001)
    brute = n[np.argmin(laws.kaplan_nd(n, 1e21 / (6 * n), **kaplan2020().params))]
    assert k["n_opt"][0] == pytest.approx(brute, rel=1e-3)
    # a bootstrapped fit gives intervals that bracket its own answer
    df = isoflop(2, noise=0.01)
    fit = fit_law(df, "chinchilla", bootstrap=20, seed=0, n_jobs=1, progress=False)
    b = compute_optimal(fit, 1e22)
    for key in ("n_opt", "d_opt", "tokens_per_param", "loss"):
        lo, hi = b[f"{key}_ci"]
        assert lo[0] <= b[key][0] <= hi[0], key
    with pytest.raises(InputError, match="law: law 'kaplan_n' is not a law of both N and D"):
        compute_optimal(fit_law(df.assign(tokens=1e12), "kaplan_n", progress=False), 1e21)


def test_allocation_fit_round_trip_and_interval_propagation(tmp_path):
    fit = approach2(isoflop(3), bootstrap=40, seed=1)
    fit.save(tmp_path / "a2.json")
    back = load_result(tmp_path / "a2.json")
    assert isinstance(back, AllocationFit) and back.params == fit.params and back.points == fit.points
    r = compute_optimal(back, [1e20, 1e23])
    lo, hi = r["n_opt_ci"]
    assert np.all(lo < r["n_opt"]) and np.all(r["n_opt"] < hi)
    assert compute_optimal(back, 1e26)["warnings"]  # far beyond the budgets fitted
    assert "Approach 2" in back.report()

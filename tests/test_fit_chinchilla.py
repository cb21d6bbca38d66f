"""Chinchilla Approach 3: recovery of known laws, the exhaustive grid's optimum, bootstrap
mechanics, diagnostics and persistence. Ground truth is the Besiroglu et al. 2024 refit."""
import numpy as np
import pandas as pd
import pytest
from scipy.special import huber as scipy_huber

from analysis import laws
from analysis.data.synthetic import synthetic_table
from fit_bench import baseline
from analysis.fitting.fit import EPOCH_GRID, fit_law
from analysis.data.published import besiroglu2024, hoffmann2022
from analysis.fitting.result import LawFit
from analysis.fitting.io import load_result

TRUE = besiroglu2024().params
FAR = (70e9, 1.4e12)  # Chinchilla: 23x the largest model and 2.3x the most tokens below


def ladder(seed, noise=0.005, sizes=np.geomspace(1e7, 3e9, 10), tpp=(2, 5, 10, 20, 50, 100, 200)):
    """10 sizes x 7 tokens-per-parameter ratios, log-normal noise on the loss."""
    rng = np.random.default_rng(seed)
    N = np.repeat(sizes, len(tpp))
    D = N * np.tile(np.asarray(tpp, float), len(sizes))
    L = laws.chinchilla(N, D, **TRUE) * np.exp(rng.normal(0, noise, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": L})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_the_law_and_a_far_extrapolation(seed):
    fit = fit_law(ladder(seed), "chinchilla", progress=False)
    p = fit.params
    # Tolerances: 0.5% loss noise on 70 points gives E to about 1% and exponents to about 0.01.
    assert p["E"] == pytest.approx(TRUE["E"], rel=0.025)
    assert p["alpha"] == pytest.approx(TRUE["alpha"], abs=0.025)
    assert p["beta"] == pytest.approx(TRUE["beta"], abs=0.025)
    truth = laws.chinchilla(*FAR, **TRUE)
    assert float(fit.predict(*FAR)) == pytest.approx(truth, rel=0.015)
    assert fit.extrapolation_warnings(N=FAR[0], D=FAR[1])  # and it says this is an extrapolation
    assert fit.n_sizes == 10 and fit.n_points == 70 and not fit.warnings


HOFFMANN = hoffmann2022().params  # Hoffmann et al. 2022, Sec. 3.3


def test_linear_solve_gives_the_coefficients_of_a_law_whose_exponents_are_on_its_grid():
    # with alpha and beta fixed at the truth, weighted least squares is exact on exact losses
    N, D = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4))
    N, D = N.ravel(), D.ravel()
    law = {"E": 1.8, "A": 300.0, "B": 900.0, "alpha": 0.35, "beta": 0.3}
    form = laws.get_law("chinchilla").form
    rows = form.linear_starts({"x": np.log(N), "y": np.log(D)}, np.log(laws.chinchilla(N, D, **law)))
    at = rows[np.isclose(rows[:, 3], 0.35) & np.isclose(rows[:, 4], 0.3)]
    assert len(at) == 1
    assert form.to_natural(at[0])["E"] == pytest.approx(1.8, rel=1e-9)
    assert form.to_natural(at[0])["A"] == pytest.approx(300.0, rel=1e-9)
    assert form.to_natural(at[0])["B"] == pytest.approx(900.0, rel=1e-9)


def test_a_ladder_of_hundreds_of_billions_of_tokens_recovers_the_law():
    # four sizes 190M-1.3B at 20-200 tokens per parameter (up to 260B tokens), exact
    # Hoffmann losses: every start of the replication's grid puts the data term far from
    # these losses, and L-BFGS from its best points alone ends with beta on its bound and
    # residuals of 6%; the linear solves start it where the law is
    N, D = np.array([(n, m * n) for n in (1.9e8, 3.7e8, 7.6e8, 1.3e9) for m in (20, 50, 100, 200)]).T
    table = pd.DataFrame({"params": N, "tokens": D, "loss": laws.chinchilla(N, D, **HOFFMANN)})
    fit = fit_law(table, "chinchilla", progress=False, uncertainty=False)
    for k, v in HOFFMANN.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k
    from analysis.fitting.optimize import solve_form
    grid_only = solve_form("chinchilla", {"x": np.log(N), "y": np.log(D)}, np.log(table["loss"].to_numpy()),
                           uncertainty=False, n_linear=0)
    assert grid_only.params["beta"] > 1.0  # the failure the linear starts mend


def test_objective_is_the_summed_huber_of_log_residuals():
    df = ladder(3)
    fit = fit_law(df, "chinchilla", progress=False)
    r = np.log(laws.chinchilla(df["params"], df["tokens"], **fit.params)) - np.log(df["loss"])
    assert fit.objective == pytest.approx(float(np.sum(scipy_huber(1e-3, r))), rel=1e-9)


def test_pruned_grid_reaches_the_optimum_of_plain_lbfgs_from_the_grid():
    pts = synthetic_table(120, seed=4)
    fit = fit_law(pts, "chinchilla", progress=False)
    # every 15th point of the replication's 4,500-point grid, plain L-BFGS-B, numerical gradient
    # (the whole grid is `python docs/studies/fit_bench.py`: about 45 s)
    f_plain, theta = baseline(pts, EPOCH_GRID[::15])
    assert fit.objective <= f_plain * (1 + 1e-7)
    plain = {"E": np.exp(theta[0]), "A": np.exp(theta[1]), "B": np.exp(theta[2]), "alpha": theta[3],
             "beta": theta[4]}
    assert float(fit.predict(*FAR)) == pytest.approx(laws.chinchilla(*FAR, **plain), rel=1e-4)
    assert fit.meta["grid_size"] == 4500 and fit.meta["starts"] == 8


def _runs_table(seed=5):
    # 12 runs, each contributing 3 points (two cooldown branches and its final point)
    df = ladder(seed, sizes=np.geomspace(1e7, 3e9, 4), tpp=(5, 20, 80, 10, 40, 160, 15, 60, 240))
    df["run"] = [f"run{i // 3}" for i in range(len(df))]
    return df


def test_bootstrap_resamples_runs_reproducibly_across_worker_counts():
    df = _runs_table()
    one = fit_law(df, "chinchilla", bootstrap=24, seed=7, n_jobs=1, progress=False)
    two = fit_law(df, "chinchilla", bootstrap=24, seed=7, n_jobs=2, progress=False)
    assert one.meta["bootstrap"]["unit"] == "runs" and one.samples.shape == (24, 5)
    np.testing.assert_allclose(one.samples, two.samples, rtol=1e-9)
    for k, (lo, hi) in one.ci.items():
        assert lo < hi
    assert one.meta["ci_method"] == "bootstrap" and "bootstrap percentiles over 24 refits resampling runs" in one.report()
    # derived quantities get intervals from the same draws
    a_lo, a_hi = one.derived_ci()["a"]
    assert a_lo < TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"]) + 0.1 and a_lo < a_hi
    lo, hi = one.predict_interval(*FAR)
    assert lo < float(one.predict(*FAR)) < hi
    points = fit_law(df, "chinchilla", bootstrap=8, resample="points", progress=False)
    assert points.meta["bootstrap"]["unit"] == "points"


def test_bootstrapped_fit_round_trips_through_json(tmp_path):
    fit = fit_law(_runs_table(6), "chinchilla", bootstrap=10, seed=1, n_jobs=1, progress=False)
    fit.save(tmp_path / "fit.json")
    back = LawFit.load(tmp_path / "fit.json")
    assert isinstance(load_result(tmp_path / "fit.json"), LawFit)
    np.testing.assert_array_equal(back.samples, fit.samples)
    assert back.ci == fit.ci and back.warnings == fit.warnings and back.meta["bootstrap"] == fit.meta["bootstrap"]
    N, D = np.array([1e9, 7e10]), np.array([2e10, 1.4e12])
    np.testing.assert_array_equal(back.predict(N, D), fit.predict(N, D))


def test_report_flags_narrow_and_thin_designs():
    # sizes within a factor of 2: the N term is not identifiable
    narrow = fit_law(ladder(0, noise=0.01, sizes=np.geomspace(1e8, 2e8, 4)), "chinchilla", progress=False)
    text = " ".join(narrow.warnings)
    assert ("not separately identifiable" in text or "poorly determined" in text or "bound" in text), text
    assert "[[Warnings]]" in narrow.report()
    # two sizes only: allowed, but flagged
    thin = fit_law(ladder(0, sizes=np.array([1e8, 1e9])), "chinchilla", progress=False)
    assert any("only 2 distinct model sizes" in w for w in thin.warnings)


def test_asymptotic_standard_errors_agree_with_the_bootstrap_spread():
    # An independent check of Huber's formula: a covariance off by the robust reweighting
    # (lmfit's own, about 4x too large here) or without the 1/m^2 factor fails it.
    fit = fit_law(synthetic_table(250, seed=9), "chinchilla", bootstrap=60, seed=0, n_jobs=2, progress=False)
    for k, j in (("E", 0), ("alpha", 3), ("beta", 4)):
        spread = float(np.nanstd(fit.samples[:, j], ddof=1))
        assert 0.5 < fit.stderr[k] / spread < 2.0, (k, fit.stderr[k], spread)


def test_a_parameter_near_zero_is_reported_with_its_standard_error_not_a_percentage():
    from analysis.fitting.result import uncertainty_warnings

    params = {"E": 1e-3, "A": 300.0, "B": 50.0, "alpha": 0.6, "beta": 0.3}
    stderr = {"E": 0.4, "A": 100.0, "B": 60.0, "alpha": 0.33, "beta": 0.01}
    by = {w.split()[1]: w for w in uncertainty_warnings(params, stderr)}
    # E = 0.001 +- 0.4 lies 0.0025 standard errors from 0: a relative error (40000%) says
    # nothing there, so the warning gives the value and its standard error instead.
    assert by["E"] == "parameter E = 0.001 ± 0.4 (stderr) is poorly determined: the interval includes 0"
    assert "%" not in by["E"]
    assert by["B"].startswith("parameter B = 50 ± 60 (stderr)")  # 1.2 stderr from 0: same wording
    # alpha = 0.6 +- 0.33 stays clear of 0 (1.8 stderr): a relative error still means something.
    assert by["alpha"] == "parameter alpha = 0.6 is poorly determined (stderr 0.33, 55% of its value)"
    assert set(by) == {"E", "B", "alpha"}  # A (33%) and beta (3%) are determined


def _enumerated_shortfall(run_sizes, needed):
    """Share of all R^R equally likely resamples of R runs that hold fewer than ``needed`` sizes."""
    from itertools import product

    R = len(run_sizes)
    short = sum(len({run_sizes[i] for i in seq}) < needed for seq in product(range(R), repeat=R))
    return short / R ** R


@pytest.mark.parametrize("run_sizes, needed", [
    ((1, 2, 3, 4), 3), ((1, 2, 3, 4), 4), ((1, 1, 2, 3), 3), ((1, 1, 1, 2, 3), 3), ((1, 2, 2, 3, 3, 3), 3),
    ((1, 1, 2, 2), 2), ((1, 2), 3)])
def test_share_of_whole_run_resamples_short_of_sizes_is_exact(run_sizes, needed):
    from analysis.fitting.fit import short_of_sizes

    assert short_of_sizes(run_sizes, needed) == pytest.approx(_enumerated_shortfall(run_sizes, needed), abs=1e-12)


def test_share_short_of_sizes_matches_the_closed_form_for_one_run_per_size():
    from math import factorial

    from analysis.fitting.fit import short_of_sizes

    for n in (3, 4, 6, 9):  # all n sizes survive in n!/n^n of the resamples
        assert short_of_sizes(range(n), n) == pytest.approx(1 - factorial(n) / n ** n, rel=1e-12)


def _one_run_per_size(seed=0):
    """A demo-like sweep: 4 sizes, one WSD run each, a final point and three cooldown branches."""
    df = ladder(seed, sizes=np.geomspace(1e5, 2e6, 4), tpp=(1, 2, 4, 8))
    df["run"] = [f"run{i // 4}" for i in range(len(df))]
    return df


def test_auto_resamples_points_when_whole_runs_would_too_often_drop_sizes():
    df = _one_run_per_size()
    fit = fit_law(df, "chinchilla", bootstrap=12, seed=3, n_jobs=1, progress=False)
    # 4 runs, one per size: 34% of whole-run resamples keep fewer than the 3 sizes that
    # E + A/N^alpha needs (1 - 168/256, counted by hand), more than the 5% tail of a 90% interval.
    assert fit.meta["bootstrap"]["unit"] == "points"
    (note,) = [n for n in fit.meta["notes"] if "resamples points, not whole runs" in n]
    assert "34% of resamples of whole runs (4 runs, 1 per model size)" in note
    assert "fewer than 3 distinct model sizes, too few to determine E, A and alpha" in note
    assert f"note: {note}" in fit.report()
    # The draws are the ones a points bootstrap takes, and asking for points says the same.
    points = fit_law(df, "chinchilla", bootstrap=12, seed=3, n_jobs=1, progress=False, resample="points")
    np.testing.assert_array_equal(points.samples, fit.samples)
    assert points.report() == fit.report()
    # Forcing runs keeps runs, with a warning.
    runs = fit_law(df, "chinchilla", bootstrap=12, seed=3, n_jobs=1, progress=False, resample="runs")
    assert runs.meta["bootstrap"]["unit"] == "runs"
    assert any(w.startswith("resampling whole runs as asked: 34% of resamples") for w in runs.warnings)


def test_auto_keeps_whole_runs_when_each_size_has_enough_runs():
    df = _runs_table()  # 12 runs, 3 per size: 0.15% of resamples hold fewer than 3 sizes
    fit = fit_law(df, "chinchilla", bootstrap=4, seed=0, n_jobs=1, progress=False)
    assert fit.meta["bootstrap"]["unit"] == "runs"
    assert not [n for n in fit.meta["notes"] if "resamples" in n]
    asked = fit_law(df, "chinchilla", bootstrap=4, seed=0, n_jobs=1, progress=False, resample="points")
    assert any("resamples points, as asked, though whole runs could be resampled" in n
               for n in asked.meta["notes"])

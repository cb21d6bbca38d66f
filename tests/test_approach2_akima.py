"""Approach 2 as Porian et al. 2024 do it (optimum="akima"): against the authors' own
per-budget optima and exponents on all 15 configurations, and against known truth."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis import laws
from analysis.data import datasets
from analysis.fitting.approaches import akima_optimum, approach2, loglog_fit
from analysis.common.errors import InputError
from scaling.app.cli import main

CONFIGS = [n for n in datasets.list_datasets() if n.startswith("porian2024:")]
FITS = datasets.table("porian2024_fits").set_index("config_id")
OPTIMA = datasets.table("porian2024_optimal")


@pytest.fixture(scope="module")
def akima_fits():
    return {name: approach2(datasets.load(name), optimum="akima", bootstrap=0, seed=0, level=0.95)
            for name in CONFIGS}


def test_fifteen_configurations():
    assert len(CONFIGS) == 15


@pytest.mark.parametrize("name", CONFIGS)
def test_exponent_lands_inside_the_authors_95_percent_interval(akima_fits, name):
    ref = FITS.loc[name.split(":", 1)[1]]
    fit = akima_fits[name]
    assert ref["a_ci95_lo"] <= fit.params["a"] <= ref["a_ci95_hi"]
    # the same estimator with another random stream: within a fifth of the authors' interval width
    assert fit.params["a"] == pytest.approx(ref["a_exponent_N"], abs=0.2 * (ref["a_ci95_hi"] - ref["a_ci95_lo"]))
    # and the toolkit's own 95% interval overlaps theirs
    lo, hi = fit.ci["a"]
    assert lo < ref["a_ci95_hi"] and hi > ref["a_ci95_lo"]


@pytest.mark.parametrize("name", CONFIGS)
def test_per_budget_optima_match_the_authors(akima_fits, name):
    ref = OPTIMA[OPTIMA["config_id"] == name.split(":", 1)[1]].dropna(subset=["n_star"])
    pts = pd.DataFrame(akima_fits[name].points)
    # the same budgets are usable (the authors drop 4 of 177: edge or unstable minima)
    np.testing.assert_allclose(np.sort(pts["C"]), np.sort(ref["flops"]), rtol=1e-9)
    pts = pts.sort_values("C")
    ref = ref.sort_values("flops")
    # the noise-free argmin is deterministic: the same grid point as theirs
    np.testing.assert_allclose(pts["n_opt_no_noise"], ref["n_star_argmin_no_noise"], rtol=1e-9)
    # bootstrap medians and stds depend on the draws: within a grid step or two, and 15%
    np.testing.assert_allclose(pts["n_opt"], ref["n_star"], rtol=0.05)
    np.testing.assert_allclose(pts["log_n_opt_std"], ref["log_n_star_std"], rtol=0.15)


def test_weighted_power_law_is_weighted_least_squares():
    rng = np.random.default_rng(3)
    C = np.geomspace(1e17, 1e20, 9)
    N = 0.1 * C ** 0.5 * np.exp(rng.normal(0, 0.05, len(C)))
    w = rng.uniform(0.5, 20, len(C))
    s, k, _, _ = loglog_fit(C, N, w)
    # numpy's polyfit weights multiply the residuals, so they are the square roots of ours
    ref = np.polyfit(np.log(C), np.log(N), 1, w=np.sqrt(w))
    assert s == pytest.approx(ref[0], rel=1e-10) and np.log(k) == pytest.approx(ref[1], rel=1e-10)
    assert loglog_fit(C, N, np.ones(len(C)))[:2] == pytest.approx(loglog_fit(C, N)[:2], rel=1e-12)


TRUE = {"E": 1.8, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.30}


def _ladder(noise=0.0, seed=0, per_budget=9):
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.geomspace(1e18, 1e21, 7):
        n_opt, _ = laws.chinchilla_optimal(C, **TRUE)
        for n in n_opt * np.geomspace(1 / 6, 6, per_budget):
            d = C / (6 * n)
            rows.append({"params": n, "tokens": d, "flops": C, "budget": C,
                         "loss": laws.chinchilla(n, d, **TRUE) + noise * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_akima_recovers_a_known_allocation_exponent():
    a_true = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])  # Hoffmann et al. 2022, eq. 4
    fit = approach2(_ladder(), optimum="akima", noise=0.002, bootstrap=300)
    assert fit.params["a"] == pytest.approx(a_true, abs=0.005)
    C = np.array([p["C"] for p in fit.points])
    n_true = np.array([laws.chinchilla_optimal(c, **TRUE)[0] for c in C])
    np.testing.assert_allclose([p["n_opt"] for p in fit.points], n_true, rtol=0.03)
    noisy = approach2(_ladder(noise=0.003, seed=1), optimum="akima", noise=0.003, bootstrap=300)
    assert noisy.params["a"] == pytest.approx(a_true, abs=0.03)
    assert noisy.ci["a"][0] < noisy.params["a"] < noisy.ci["a"][1]
    assert "Akima" in " ".join(noisy.meta["notes"]) and "0.003 nats (as given)" in " ".join(noisy.meta["notes"])


def test_a_budget_whose_minimum_is_at_an_edge_is_left_out():
    df = _ladder()
    last = df["budget"].max()
    n_opt, _ = laws.chinchilla_optimal(last, **TRUE)
    # keep only sizes below the optimum at the largest budget: its minimum is the largest size
    df = df[(df["budget"] < last) | (df["params"] < 0.9 * n_opt)]
    fit = approach2(df, optimum="akima", noise=0.002, bootstrap=100)
    assert fit.n_budgets == 6
    assert any(f"C={last:.3g} left out" in w and "largest size" in w for w in fit.warnings)


def test_akima_optimum_uses_the_lowest_loss_of_repeated_sizes():
    n = np.array([1e6, 2e6, 4e6, 8e6, 4e6])
    loss = np.array([4.0, 3.8, 3.75, 3.9, 3.0])  # the repeat at 4e6 is much lower
    res, why = akima_optimum(n, loss, noise=0.001, draws=200, rng=0)
    # as Porian et al. keep the minimum over runs of the same N: the same as the four best points
    ref, _ = akima_optimum(n[:4], [4.0, 3.8, 3.0, 3.9], noise=0.001, draws=200, rng=0)
    assert why == "" and res["n_opt"] == ref["n_opt"] and res["n_opt_no_noise"] == ref["n_opt_no_noise"]
    assert 2e6 < res["n_opt"] < 8e6


def test_bad_options_are_one_line_errors():
    with pytest.raises(InputError, match="optimum"):
        approach2(_ladder(), optimum="cubic")
    with pytest.raises(InputError, match="noise"):
        approach2(_ladder(), optimum="akima", noise=-1.0)


def test_parabola_stays_the_default():
    df = datasets.load("porian2024:rw/base/long/kaplan/standard/val")
    default = approach2(df, bootstrap=0)
    assert default.params == approach2(df, bootstrap=0, optimum="parabola").params
    assert "optimum" not in default.meta


def test_cli_optimum_akima(capsys):
    name = "porian2024:rw/base/short/kaplan/standard/val"
    code = main(["fit", name, "--law", "approach2", "--optimum", "akima", "--level", "0.95", "--json", "--quiet"])
    out, _ = capsys.readouterr()
    d = json.loads(out)
    ref = FITS.loc[name.split(":", 1)[1]]
    assert code == 0 and ref["a_ci95_lo"] <= d["law"]["params"]["a"] <= ref["a_ci95_hi"] and d["law"]["bootstrap_draws"] > 500
    code = main(["fit", name, "--optimum", "akima", "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2 and "--optimum" in err and "--law approach2" in err and len(err.strip().splitlines()) == 1

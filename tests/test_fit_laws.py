"""The over-training law and Kaplan's forms recover their constants from seeded synthetic data."""
import numpy as np
import pandas as pd
import pytest

from analysis import laws
from analysis.fitting.fit import fit_law, frontier_points, pick_kaplan_law
from analysis.data.published import kaplan2020, kaplan2020_c, kaplan2020_n

SIZES = np.geomspace(1e7, 1e9, 6)


def grid(fn, seed, noise=0.003, sizes=SIZES, tpp=(5, 10, 20, 40, 80)):
    rng = np.random.default_rng(seed)
    N = np.repeat(sizes, len(tpp))
    D = N * np.tile(np.asarray(tpp, float), len(sizes))
    return pd.DataFrame({"params": N, "tokens": D, "loss": fn(N, D) * np.exp(rng.normal(0, noise, len(N)))})


def test_overtraining_law_recovers_its_shared_exponent_from_five_small_runs_and_predicts_far():
    true = {"E": 1.9, "A": 300.0, "B": 800.0, "eta": 0.3}
    # Gadre et al. fit from a handful of small runs; here 5 sizes at 20 tokens/param plus over-trained points
    df = grid(lambda n, d: laws.gadre2024(n, d, **true), seed=0, sizes=np.geomspace(1e7, 1.6e8, 5),
              tpp=(10, 20, 80, 320))
    fit = fit_law(df, "gadre2024", progress=False)
    assert fit.params["eta"] == pytest.approx(0.3, abs=0.02)
    # a 1B model trained at 500 tokens per parameter, 6x larger and far more over-trained than any run
    far = laws.gadre2024(1e9, 5e11, **true)
    assert float(fit.predict(1e9, 5e11)) == pytest.approx(far, rel=0.01)


def test_kaplan_joint_law_recovers_table2_constants():
    true = kaplan2020().params
    df = grid(lambda n, d: laws.kaplan_nd(n, d, **true), seed=1)
    fit = fit_law(df, "kaplan_nd", progress=False)
    assert fit.params["alpha_N"] == pytest.approx(true["alpha_N"], abs=0.004)
    assert fit.params["alpha_D"] == pytest.approx(true["alpha_D"], abs=0.01)
    assert np.log(fit.params["N_c"]) == pytest.approx(np.log(true["N_c"]), abs=0.5)
    assert np.log(fit.params["D_c"]) == pytest.approx(np.log(true["D_c"]), abs=0.7)
    assert any("total parameter count" in n for n in fit.meta["notes"])


def test_kaplan_single_variable_laws_and_non_embedding_counts():
    true = kaplan2020_n().params
    # "converged" models: every size trained on the same, very large number of tokens
    df = grid(lambda n, d: laws.kaplan_n(n * 0.8, **true), seed=2, tpp=(1000,)).assign(tokens=1e13)
    df["params_nonembedding"] = df["params"] * 0.8
    fit = fit_law(df, "kaplan_n", progress=False)
    assert fit.meta["inputs"] == {"N": "params_nonembedding"}
    assert fit.params["alpha_N"] == pytest.approx(true["alpha_N"], abs=0.005)
    assert np.log(fit.params["N_c"]) == pytest.approx(np.log(true["N_c"]), abs=0.6)
    assert pick_kaplan_law(df) == "kaplan_n"

    d_true = {"D_c": 5.4e13, "alpha_D": 0.095}
    df = grid(lambda n, d: laws.kaplan_d(d, **d_true), seed=3, sizes=np.array([3e9]), tpp=(1, 3, 10, 30, 100))
    fit = fit_law(df, "kaplan_d", progress=False)
    assert fit.params["alpha_D"] == pytest.approx(0.095, abs=0.005)
    assert pick_kaplan_law(df) == "kaplan_d"


def test_kaplan_compute_frontier_is_fitted_to_the_envelope_only():
    true = kaplan2020_c().params
    df = grid(lambda n, d: laws.kaplan_c(6 * n * d, **true), seed=4)
    # points off the frontier: each size's undertrained copies do worse at the same compute
    worse = df.assign(loss=df["loss"] * 1.05, tokens=df["tokens"] * 1.0001)
    both = pd.concat([df, worse], ignore_index=True)
    both["flops"] = 6 * both["params"] * both["tokens"]
    assert len(frontier_points(both)) <= len(df)
    fit = fit_law(both, "kaplan_c", progress=False)
    assert fit.params["alpha_C"] == pytest.approx(true["alpha_C"], abs=0.004)
    assert fit.n_points <= len(df) and "frontier" in fit.meta["notes"][-1]
    assert pick_kaplan_law(df) == "kaplan_nd"

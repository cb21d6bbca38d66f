"""The self-check for a systematic trend of the residuals (analysis.selection.checks.trend_checks)."""
import numpy as np
import pandas as pd

from analysis.selection.checks import self_checks
from analysis.fitting.fit import fit_law
from analysis.laws import chinchilla

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _table(bend: float, seed: int = 0) -> pd.DataFrame:
    """Chinchilla's law with 0.3% noise, times exp(bend * (log D - mean)^2): a V in log D
    that no Chinchilla-form law can follow."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(2e7, 1e9, 6), 6)
    D = N * np.tile(np.geomspace(2, 200, 6), 6)
    x = np.log(D) - np.log(D).mean()
    loss = chinchilla(N, D, **TRUTH) * np.exp(bend * x * x + rng.normal(0, 0.003, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss})


def _trend(points):
    fit = fit_law(points, "chinchilla", progress=False)
    (check,) = [c for c in self_checks(fit, points) if c.name == "residuals show no systematic trend"]
    return check


def test_a_law_of_the_right_form_passes():
    check = _trend(_table(0.0))
    assert check.status == "ok" and check.detail.startswith("log D p = ")


def test_a_v_in_log_d_is_named_with_its_p_value():
    check = _trend(_table(0.01))
    assert check.status == "warn"
    assert check.detail.startswith("residuals trend with log D (quadratic F-test p = ")
    assert check.detail.endswith("the law's form misses the data")

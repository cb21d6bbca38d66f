"""A table without a run column whose sizes each hold several points (cooldown or WSD
branches of one run) is bootstrapped by whole model sizes, and says so."""
import numpy as np
import pandas as pd

from analysis.fitting.bootstrap import bootstrap_indices, choose_resample
from analysis.fitting.fit import fit_law
from analysis.laws import chinchilla


def _branches(with_run: bool = False) -> pd.DataFrame:
    # eight sizes, each one run read at four budgets (its cooldown branches)
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(2e7, 1e9, 8), 4)
    Dt = N * np.tile([5.0, 10.0, 20.0, 40.0], 8)
    loss = chinchilla(N, Dt, E=1.8, A=400.0, B=400.0, alpha=0.34, beta=0.28) * np.exp(rng.normal(0, 0.003, len(N)))
    df = pd.DataFrame({"params": N, "tokens": Dt, "loss": loss})
    return df.assign(run=np.repeat([f"r{i}" for i in range(8)], 4)) if with_run else df


def test_branches_without_a_run_column_are_drawn_by_whole_sizes():
    df = _branches()
    groups, unit, note, warning = choose_resample(df, "chinchilla", "params", "auto", 0.90)
    assert unit == "sizes" and "whole model sizes" in note and not warning
    for idx in bootstrap_indices(len(df), 20, groups, seed=1):
        drawn = df.iloc[idx]
        # every size drawn comes with all four of its points, as often as the size was drawn
        counts = drawn.groupby("params").size()
        assert (counts % 4 == 0).all()
        assert (drawn.groupby(["params", "tokens"]).size().groupby("params").nunique() == 1).all()


def test_the_fit_reports_the_unit_and_a_run_column_takes_precedence():
    fit = fit_law(_branches(), "chinchilla", bootstrap=30, seed=0, progress=False)
    assert fit.meta["bootstrap"]["unit"] == "model sizes"
    assert any("whole model sizes" in n for n in fit.meta["notes"])
    assert "resampling model sizes" in fit.report()
    fit = fit_law(_branches(with_run=True), "chinchilla", bootstrap=30, seed=0, progress=False)
    assert fit.meta["bootstrap"]["unit"] == "runs"
    # asked for points, points it is
    groups, unit, _, _ = choose_resample(_branches(), "chinchilla", "params", "points", 0.90)
    assert groups is None and unit == "points"


def test_too_few_sizes_to_draw_whole_ones_fall_back_to_points_and_say_why():
    df = _branches()
    df = df[df["params"] <= df["params"].unique()[3]]  # four sizes
    groups, unit, note, _ = choose_resample(df, "chinchilla", "params", "auto", 0.90)
    assert groups is None and unit == "points" and "fewer than 3 distinct sizes" in note

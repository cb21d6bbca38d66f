"""Fitting the largest sizes only: the cut itself, auto's choice of it on ladders whose small
models follow the law or bend away from it, and what the fit then says and covers."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.selection.backtest import CUT_GAIN, backtest, backtests_by_cut, held_out_errors
from backtest_tables import nested_auto
from analysis.selection.checked import ALL_SIZES, fit_checked
from analysis.common.errors import InputError
from analysis.fitting.fit import fit_law
from analysis.laws import chinchilla
from analysis.selection.size_cuts import MIN_KEPT_SIZES, describe_cut, kept_count, largest_sizes, parse_sizes

FREE = {"E": 1.8, "A": 4000.0, "B": 100.0, "alpha": 0.5, "beta": 0.25}
SIZES = np.geomspace(2e7, 2e9, 8)
TPP = (5.0, 10.0, 20.0, 40.0, 80.0)


def ladder(seed: int, bend: float = 0.0, noise: float = 0.004) -> pd.DataFrame:
    """Free-exponent Chinchilla data; with ``bend``, models below 220M lose an extra ``bend``
    per e-fold of size below it (small models that follow another curve)."""
    rng = np.random.default_rng(seed)
    N, D = np.array([(n, t * n) for n in SIZES for t in TPP]).T
    L = chinchilla(N, D, **FREE) * (1 + bend * np.clip(np.log(2.2e8 / N), 0, None))
    loss = L * np.exp(rng.normal(0.0, noise, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss, "flops": 6 * N * D})


def test_a_cut_keeps_the_largest_fraction_of_the_sizes_and_never_fewer_than_four():
    df = ladder(0)
    assert kept_count(8, 1.0) == 8 and kept_count(8, 0.5) == 4 and kept_count(8, 2 / 3) == 6
    assert kept_count(6, 0.5) == MIN_KEPT_SIZES == 4 and kept_count(3, 0.5) == 3
    half = largest_sizes(df, 0.5)
    assert sorted(half["params"].unique()) == pytest.approx(sorted(SIZES[-4:]), rel=1e-12)
    assert len(half) == 4 * len(TPP) and largest_sizes(df, 1.0) is df
    assert describe_cut(df, 0.5) == "the largest 4 of 8 sizes (N >= 278M)"
    assert describe_cut(df, 1.0) == "all 8 sizes"


@pytest.mark.parametrize("text, value", [("auto", "auto"), ("all", 1.0), ("1/2", 0.5), ("0.25", 0.25), (" 2/3", 2 / 3)])
def test_sizes_option_values(text, value):
    assert parse_sizes(text) == value


@pytest.mark.parametrize("text", ["0", "1.5", "-1/2", "half", "1/0"])
def test_a_bad_sizes_value_names_the_option_and_the_fix(text):
    with pytest.raises(InputError) as e:
        parse_sizes(text)
    assert str(e.value).startswith(f"--sizes: {text!r} is not auto, all or a fraction in (0, 1]")
    assert "2/3 or 1/2" in str(e.value)


def test_the_backtest_at_a_cut_refits_each_split_on_its_largest_sizes():
    df = ladder(1)
    bt = backtest(df, laws=("chinchilla",), keep=0.5)
    ref = backtest(df, laws=("chinchilla",))
    for row, full in zip(bt.rows, ref.rows):
        assert row.split == full.split and row.n_test == full.n_test  # the same held-out points
        assert row.n_train_sizes == kept_count(full.n_train_sizes, 0.5) < full.n_train_sizes
    # Reference: the largest-size split by hand, the law fitted to its training part's largest 4 sizes.
    train = df[df["params"] < SIZES[-1]]
    fit = fit_law(largest_sizes(train, 0.5), "chinchilla", progress=False)
    test = df[df["params"] == SIZES[-1]]
    rel = np.abs(fit.predict_table(test) / test["loss"].to_numpy() - 1)
    assert bt.rows[0].max_rel_error == pytest.approx(rel.max(), rel=1e-9)
    # A cut that keeps the same sizes as a larger one on every split is backtested once: with 5
    # sizes only the compute split's training part (all 5) can lose one, and 2/3 and 1/2 both keep 4.
    assert list(backtests_by_cut(df.iloc[:5 * len(TPP)], laws=("chinchilla",))) == [1.0, 2 / 3]
    assert list(backtests_by_cut(df.iloc[:4 * len(TPP)], laws=("chinchilla",))) == [1.0]


def test_auto_cuts_the_small_sizes_that_bend_away_and_its_intervals_still_cover_every_size():
    df = ladder(0, bend=0.08)
    # the earlier rule, behind --sizes auto, on every run (min_tpp=0: the cut is what is tested here)
    checked = fit_checked(df, sizes="auto", progress=False, min_tpp=0)
    choice = checked.choice
    assert choice.keep < 1.0
    assert choice.score < choice.cut_scores[1.0] * (1 - CUT_GAIN)
    assert f"fitted to {describe_cut(df, choice.keep)}, held-out max error" in choice.reason
    assert "; fitted to every size the best was " in choice.reason
    kept = largest_sizes(df, choice.keep)
    assert checked.fit.n_points == len(kept)
    assert checked.sizes_note.startswith(f"sizes: fitted to {describe_cut(df, choice.keep)}, {len(kept)} of 40 points")
    assert checked.sizes_note in checked.header_lines()
    # the same law fitted to every size is part of the spread, and the header says why
    whole = choice.law + ALL_SIZES
    assert whole in checked.tied and checked.tied[whole].n_points == len(df)
    assert "judged one extrapolation step out" in checked.widening_line()
    N, D = np.array([8e9]), np.array([1.6e11])
    lo, hi = checked.predict_interval(N=N, D=D)
    for f in (checked.fit, checked.tied[whole]):
        assert lo[0] <= f.predict(N=N, D=D)[0] <= hi[0]
    assert checked.to_dict()["choice"]["sizes"] == f"largest {'1/2' if choice.keep == 0.5 else '2/3'}"


def test_a_named_law_fits_every_size_unless_asked_and_then_says_so():
    df = ladder(0, bend=0.08)
    assert fit_checked(df, "chinchilla", progress=False, min_tpp=0).fit.n_points == len(df)
    half = fit_checked(df, "chinchilla", sizes=0.5, run_backtest=True, progress=False, min_tpp=0)
    assert half.fit.n_points == 20 and half.backtest.keep == 0.5 and not half.tied
    assert "(--sizes asked for it; --sizes all fits every size)" in half.sizes_note
    # --sizes auto with a named law: the backtest chooses the cut for that law alone
    chosen = fit_checked(df, "chinchilla", sizes="auto", progress=False, min_tpp=0)
    assert chosen.fit.law == "chinchilla" and chosen.keep < 1.0


def test_nested_auto_scores_a_cut_choice_on_the_outer_refits_at_that_cut():
    df = ladder(2, bend=0.08)
    outer = backtest(df)
    rows = nested_auto(df, outer)
    cut = [r for r in rows if r.chosen.endswith("]")]
    assert cut, [r.chosen for r in rows]
    for r in cut:
        law = r.chosen.split("[")[0]
        ref = backtest(df, keep=r.keep)
        want = next(x for x in held_out_errors(ref, law, r.weights) if x["split"] == r.split)
        assert r.max_rel_error == pytest.approx(want["max_rel_error"], rel=1e-12)


def test_the_cli_sizes_option(tmp_path):
    path = tmp_path / "points.csv"
    ladder(0, bend=0.08).to_csv(path, index=False)
    run = [sys.executable, "-m", "scaling", "fit", str(path)]
    ok = subprocess.run(run + ["--law", "chinchilla", "--sizes", "1/2", "--min-tpp", "0"], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    assert "sizes: fitted to the largest 4 of 8 sizes (N >= 278M), 20 of 40 points" in ok.stdout
    bad = subprocess.run(run + ["--sizes", "3"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--sizes: '3' is not auto" in bad.stderr


def test_sizes_is_refused_where_nothing_is_fitted_to_sizes(tmp_path):
    from analysis.extrapolation.study import run_study

    with pytest.raises(InputError, match=r"^--sizes: --sizes chooses the sizes a law is fitted to, and hoffmann2022"):
        run_study(None, law="hoffmann2022", models=[7e9], sizes=0.5)
    path = tmp_path / "points.csv"
    ladder(0).to_csv(path, index=False)
    bad = subprocess.run([sys.executable, "-m", "scaling", "fit", str(path), "--law", "approach2", "--sizes", "1/2"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "approach2 fits every IsoFLOP profile, not a law on the largest sizes" in bad.stderr


def test_an_extrapolation_warns_for_the_sizes_below_the_cut():
    from analysis.extrapolation.study import run_study

    df = ladder(0, bend=0.08)
    study = run_study(df, curves=False, sizes="auto")
    kept = largest_sizes(df, study.checked.keep)
    below = sorted(set(df["params"]) - set(kept["params"]))
    assert below
    from analysis.common.text import si

    want = f"{', '.join(si(n) for n in below)} lie below the sizes the law was fitted to (from {si(kept['params'].min())} up"
    assert any(w.startswith(want) for w in study.result.warnings), study.result.warnings
    # the same table forced to every size: nothing to warn about
    assert not any("lie below the sizes" in w for w in run_study(df, sizes=1.0, curves=False).result.warnings)

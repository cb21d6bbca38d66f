"""The distance policy of ``--law auto`` (analysis.selection.policy) on real public runs whose answers
were measured (Gadre et al. 2024), and on seeded ladders whose law is known."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis.data import datasets as D
from analysis.selection.checked import fit_checked
from analysis.laws import chinchilla
from analysis.selection.backtest import BacktestRow
from analysis.selection.policy import (POLICY, ErrorModel, distance_backtest, error_growth, error_growths, has_floor,
                                       tokens_backtest)
from scaling.app.cli import main


def _errors(checked, targets):
    return checked.fit.predict_table(targets) / targets["loss"].to_numpy(float) - 1


def test_five_points_fall_back_to_a_law_they_determine_and_predict_the_1b_and_7b():
    # Gadre et al. 2024's own protocol: five runs, four sizes. Chinchilla's five parameters
    # cannot be determined; auto must answer with gadre2024 instead of refusing. The authors'
    # notebook reports 0.71% and 0.73% relative error on these rpj targets.
    checked = fit_checked(D.load("gadre2024:rpj/paper"))
    assert checked.fit.law == "gadre2024" and checked.choice.fallback
    assert "fewest parameters" in checked.choice.reason
    err = _errors(checked, D.load("gadre2024:rpj/targets"))
    assert np.all(np.abs(err) < 0.0075), err


def test_auto_takes_a_law_with_a_floor_and_predicts_gadres_7b():
    # Fitted to every RedPajama run below 1B, the floorless kaplan_nd misses the 7B by 14%;
    # auto may not choose it, and its answer is measured against the real 7B run.
    checked = fit_checked(D.load("gadre2024:rpj/small"), allow_repeats=True)
    assert has_floor(checked.fit.law)
    assert "kaplan_nd (no floor)" in checked.choice.reason
    err = _errors(checked, D.load("gadre2024:rpj/targets"))
    assert np.all(np.abs(err) < 0.015), err
    # its 90% interval, bootstrap-free, is the error model's width around the point: the fit's
    # robust scatter (1.4826 x median |relative residual| x sqrt(n / (n - 4))) times
    # sqrt(1 + c z_N^2 + c_t z_t^2), z_N and z_t the standardised distances of ln N and ln D/N
    # from the fitted points' means (a regression's prediction interval, widened for
    # distance); the fitted points are the runs of 20 tokens per parameter or more
    N, Dt = 6.89e9, 1.378e11
    lo, hi = checked.predict_interval(N=N, D=Dt, backtest_error=True)
    pred = checked.fit.predict(N=N, D=Dt)
    pts = D.load("gadre2024:rpj/small")
    pts = pts[pts["tokens"] >= 20 * pts["params"]]
    assert len(pts) == 24 and checked.fit.n_points == 24
    rel = checked.fit.predict_table(pts) / pts["loss"] - 1
    s = 1.482602218505602 * np.median(np.abs(rel)) * np.sqrt(len(pts) / (len(pts) - 4))
    ln_n, ln_t = np.log(pts["params"]), np.log(pts["tokens"] / pts["params"])
    z2_n = ((np.log(N) - ln_n.mean()) / ln_n.std(ddof=0)) ** 2
    z2_t = ((np.log(Dt / N) - ln_t.mean()) / ln_t.std(ddof=0)) ** 2
    # c and c_t are this table's own: measured on the chosen law's distance-backtest splits
    # (fitted to the smaller sizes) and on its fits to the shorter runs (six budgets: four splits)
    size_rows = checked.choice.backtest.rows_of(checked.fit.law, ok=True)
    tokens_rows = tokens_backtest(pts, checked.fit.law, allow_repeats=True)
    assert len(size_rows) == 2 and len(tokens_rows) == 4
    c, c_t = error_growths(size_rows, tokens_rows, s)
    em = checked.error_model
    assert em.leverage == pytest.approx(c) and em.leverage_tokens == pytest.approx(c_t)
    assert (em.leverage_splits, em.leverage_tokens_splits) == (2, 4)
    w = 1.6448536269514722 * s * np.sqrt(1 + c * z2_n + c_t * z2_t)
    np.testing.assert_allclose([lo, hi], [pred * (1 - w), pred * (1 + w)], rtol=1e-9)
    # the 7B lies 3.4 standard deviations of ln N beyond the centre, so its interval is wider than the 1B's
    assert checked.distance_half_width(N, D=Dt) > checked.distance_half_width(1.44e9, D=2.88e10) > 1.645 * s


def test_distance_backtest_fits_smaller_sizes_and_scores_each_larger_one():
    df = D.load("gadre2024:rw/small")
    bt = distance_backtest(df, ["gadre2024"], allow_repeats=True)
    sizes = np.unique(df["params"])
    for r in bt.rows:
        top = sizes[r.n_train_sizes - 1]
        assert r.n_test == int((df["params"] > top).sum()) and r.n_train == int((df["params"] <= top).sum())
        np.testing.assert_allclose(r.distances, df["params"][df["params"] > top] / top)
        rel = np.array(r.pred) / np.array(r.observed) - 1
        assert r.mean_rel_error == pytest.approx(np.mean(np.abs(rel)))


def test_tokens_backtest_fits_shorter_runs_and_scores_the_longer_ones():
    df = D.load("gadre2024:rw/small")
    df = df[df["tokens"] >= 20 * df["params"]].reset_index(drop=True)
    rows = tokens_backtest(df, "gadre2024", allow_repeats=True)
    m = np.round(df["tokens"] / df["params"])
    budgets = np.unique(m)  # 20 to 640: six budgets, so fits of the 2 to 5 shortest
    tpp = df["tokens"] / df["params"]
    assert [r.split for r in rows] == [f"D/N <= {tpp[m <= b].max():.3g}" for b in budgets[1:-1]]
    for r, b in zip(rows, budgets[1:-1]):
        assert r.n_train == int((m <= b).sum()) and r.n_test == int((m > b).sum())
        np.testing.assert_allclose(r.observed, df["loss"][m > b])
        # the distance of each held-out run in ln D/N, from the split's own fitted runs
        fit_t = np.log(df["tokens"] / df["params"]).to_numpy()[m <= b]
        held_t = np.log(df["tokens"] / df["params"]).to_numpy()[m > b]
        np.testing.assert_allclose(r.z2_tokens, ((held_t - fit_t.mean()) / max(fit_t.std(), 0.5)) ** 2, rtol=1e-9)
        assert np.all(np.array(r.z2) >= np.array(r.z2_tokens))
    # a law without tokens, or fewer than three budgets, gives no split
    assert tokens_backtest(df, "kaplan_n", allow_repeats=True) == []
    assert tokens_backtest(df[m <= 40], "gadre2024", allow_repeats=True) == []


def _rows_two_ways(c_n: float, c_t: float, scale: float, seed: int, tokens: bool, splits: int = 4,
                   per_split: int = 40):
    """Rows whose held-out errors have sd = scale sqrt(1 + c_n z_N^2 + c_t z_t^2): splits in
    size (z_N large, z_t small) or, with ``tokens``, in tokens per parameter (the reverse)."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(splits):
        far, near = rng.uniform(1.0, 12.0, per_split), rng.uniform(0.0, 1.0, per_split)
        z2_n, z2_t = (near, far) if tokens else (far, near)
        e = rng.normal(0.0, scale * np.sqrt(1 + c_n * z2_n + c_t * z2_t))
        observed = np.full(per_split, 3.0)
        rows.append(BacktestRow("gadre2024", f"{'t' if tokens else 's'}{j}", "", 10, 3, per_split,
                                pred=list(observed * (1 + e)), observed=list(observed), z2=list(z2_n + z2_t),
                                z2_tokens=list(z2_t)))
    return rows


def test_error_growths_measure_each_direction_on_its_own_splits():
    # Ground truth: errors that grow 8x faster per squared sd of ln N than of ln D/N. Each c
    # is recovered within its sampling error (160 errors each: about +-35%), where one c
    # measured on both kinds of split together would sit between them.
    est = [error_growths(_rows_two_ways(4.0, 0.5, 0.004, seed, False), _rows_two_ways(4.0, 0.5, 0.004, seed + 50, True),
                         0.004) for seed in range(5)]
    assert np.median([c for c, _ in est]) == pytest.approx(4.0, rel=0.35)
    assert np.median([t for _, t in est]) == pytest.approx(0.5, rel=0.35)
    size, tokens = _rows_two_ways(4.0, 0.5, 0.004, 0, False), _rows_two_ways(4.0, 0.5, 0.004, 50, True)
    one = error_growth(size + tokens, 0.004)
    c, c_t = error_growths(size, tokens, 0.004)
    assert c_t < one < c
    # a table with splits of one kind: one c for both (None for c_t); none: no measurement
    assert error_growths(size, [], 0.004) == (error_growth(size, 0.004), None)
    assert error_growths([], [], 0.004) == (None, None)
    # the error model uses both, and a saved fit keeps them
    N = np.repeat(np.geomspace(1e7, 1e9, 5), 4)
    Dt = N * np.tile([20.0, 40.0, 80.0, 160.0], 5)
    res = np.random.default_rng(4).normal(0, 0.004, len(N))
    em = ErrorModel.from_residuals(res, 4, N, Dt, prior=0.5, leverage=9.0, spread_floor=0.5, min_dof=3, splits=size,
                                   tokens_splits=tokens)
    assert (em.leverage, em.leverage_tokens) == pytest.approx(error_growths(size, tokens, em.scale))
    assert em.leverage_tokens_splits == 4 and "c_t = " in em.leverage_source and "c_t = c " not in em.leverage_source
    assert ErrorModel.from_dict(em.to_dict()) == em
    z2_n, z2_t = ((np.log(1e10) - em.centre[0]) / em.spread[0]) ** 2, ((np.log(640.0) - em.centre[1]) / em.spread[1]) ** 2
    assert em.half_width(1e10, 640e10) == pytest.approx(
        1.6448536269514722 * em.scale * np.sqrt(1 + em.leverage * z2_n + em.leverage_tokens * z2_t))


def _rows_with_growth(c_true: float, scale: float, seed: int, splits: int = 4, per_split: int = 30):
    """Backtest rows whose held-out errors are drawn with sd = scale sqrt(1 + c_true z^2)."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(splits):
        z2 = rng.uniform(0.5, 12.0, per_split)
        e = rng.normal(0.0, scale * np.sqrt(1 + c_true * z2))
        observed = np.full(per_split, 3.0)
        rows.append(BacktestRow("gadre2024", f"s{j}", "", 10, 3, per_split, pred=list(observed * (1 + e)),
                                observed=list(observed), z2=list(z2)))
    return rows


def test_error_growth_recovers_the_growth_its_errors_were_drawn_with():
    # Ground truth: errors with sd = s sqrt(1 + c z^2). The median-matching estimate recovers c
    # within its sampling error (120 errors: about +-35%), and orders different growths.
    for c_true in (0.5, 2.0, 8.0):
        est = [error_growth(_rows_with_growth(c_true, 0.004, seed), 0.004) for seed in range(5)]
        assert np.median(est) == pytest.approx(c_true, rel=0.35), (c_true, est)
    assert (error_growth(_rows_with_growth(0.5, 0.004, 0), 0.004)
            < error_growth(_rows_with_growth(2.0, 0.004, 0), 0.004)
            < error_growth(_rows_with_growth(8.0, 0.004, 0), 0.004))
    # errors no larger than the scatter: no growth; nothing scored: no measurement
    assert error_growth(_rows_with_growth(0.0, 0.002, 1), 0.004) == 0.0
    assert error_growth([], 0.004) is None
    # each split counts once: one split of 300 tiny errors does not outvote three of 10
    # (pooled point by point, as one split, the 300 would set c to 0)
    big = _rows_with_growth(4.0, 0.004, 2, splits=3, per_split=10)
    small = _rows_with_growth(0.0, 0.0004, 3, splits=1, per_split=300)
    pooled = BacktestRow("gadre2024", "all", "", 10, 3, 330, observed=sum((r.observed for r in big + small), []),
                         pred=sum((r.pred for r in big + small), []), z2=sum((r.z2 for r in big + small), []))
    assert error_growth([pooled], 0.004) == 0.0
    assert error_growth(big + small, 0.004) > 0.3


def test_error_model_says_how_firmly_its_splits_pin_c_down():
    # c from four splits, and the least and largest c with any one of them left out: a table
    # whose splits disagree says so; one split gives no range; the prior gives neither
    rng = np.random.default_rng(4)
    N = np.repeat(np.geomspace(1e7, 1e9, 5), 4)
    Dt = N * np.tile([5.0, 10.0, 20.0, 40.0], 5)
    res = rng.normal(0, 0.004, len(N))
    rows = _rows_with_growth(2.0, 0.004, 5)
    kw = dict(prior=0.5, leverage=9.0, spread_floor=0.5, min_dof=3)
    em = ErrorModel.from_residuals(res, 4, N, Dt, splits=rows, **kw)
    assert em.leverage == pytest.approx(error_growth(rows, em.scale)) and em.leverage_splits == 4
    loo = [error_growth(rows[:k] + rows[k + 1:], em.scale) for k in range(4)]
    assert em.leverage_range == pytest.approx((min(loo), max(loo)))
    assert "with any one split left out" in em.leverage_source
    # no split in tokens per parameter: c serves both directions, and the words say so
    assert em.leverage_tokens is None and "c_t = c (no split in tokens per parameter)" in em.leverage_source
    assert ErrorModel.from_dict(em.to_dict()) == em  # a saved fit keeps it
    one = ErrorModel.from_residuals(res, 4, N, Dt, splits=rows[:1], **kw)
    assert one.leverage_splits == 1 and one.leverage_range is None
    none = ErrorModel.from_residuals(res, 4, N, Dt, **kw)
    assert none.leverage == 9.0 and none.leverage_splits == 0 and none.leverage_range is None


def test_error_model_takes_its_scale_from_the_residuals_or_from_the_prior():
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(1e7, 1e9, 5), 4)
    Dt = N * np.tile([5.0, 10.0, 20.0, 40.0], 5)
    res = rng.normal(0, 0.01, len(N))
    em = ErrorModel.from_residuals(res, 4, N, Dt, prior=0.5, leverage=1.0, spread_floor=0.5, min_dof=3)
    assert em.scale == pytest.approx(1.482602218505602 * np.median(np.abs(res)) * np.sqrt(20 / 16))
    assert 0.007 < em.scale < 0.014  # a normal sample's sd, measured robustly
    # at the centre of the design the half-width is the scatter's own 90% band
    centre_n, centre_t = np.exp(np.mean(np.log(N))), np.exp(np.mean(np.log(Dt / N)))
    assert em.half_width(centre_n, centre_n * centre_t) == pytest.approx(1.6448536269514722 * em.scale)
    # one standard deviation of ln N out: sqrt(2) times that
    far = centre_n * np.exp(np.std(np.log(N)))
    assert em.half_width(far, far * centre_t) == pytest.approx(1.6448536269514722 * em.scale * np.sqrt(2))
    # five points and four parameters leave one degree of freedom: the scatter is not measured
    few = ErrorModel.from_residuals(res[:5], 4, N[:5], Dt[:5], prior=0.5, leverage=1.0, spread_floor=0.5, min_dof=3)
    assert few.scale == 0.5 and "prior" in few.scale_source
    # one budget per size: ln D/N has no spread, and half an e-fold stands in for it
    one = ErrorModel.from_residuals(res, 4, N, N * 20.0, prior=0.5, leverage=1.0, spread_floor=0.5, min_dof=3)
    assert one.spread[1] == 0.5
    assert one.z2(1e8, 20 * 1e8 * np.e) == pytest.approx(((np.log(1e8) - one.centre[0]) / one.spread[0]) ** 2 + 4.0)


@pytest.mark.slow
def test_policy_prefers_the_generating_law_on_seeded_ladders():
    # Free exponents clearly apart (alpha 0.5, beta 0.25): the shared-exponent law is wrong and
    # its backtest at distance must show it in at least 4 of 5 seeds.
    sizes, tpp = np.geomspace(2e7, 1.2e9, 6), (5.0, 10.0, 20.0, 40.0, 80.0)
    truth = {"E": 1.8, "A": 4000.0, "B": 100.0, "alpha": 0.5, "beta": 0.25}
    picks = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        N, Dt = np.array([(n, t * n) for n in sizes for t in tpp]).T
        loss = chinchilla(N, Dt, **truth) * np.exp(rng.normal(0, 0.004, len(N)))
        picks.append(POLICY.choose(pd.DataFrame({"params": N, "tokens": Dt, "loss": loss})).law)
    assert picks.count("chinchilla") >= 4, picks


def test_fit_json_gives_each_prediction_its_distance(capsys):
    code = main(["fit", "gadre2024:rpj/small", "--allow-repeats", "--json", "--predict", "1.44e9:2.88e10"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    p = out["predictions"][0]
    assert p["distance"]["params_ratio"] == pytest.approx(1.44e9 / 411616256)
    assert p["distance"]["tokens_per_param"] == pytest.approx(20.0)
    lo, hi = p["distance"]["fitted_tokens_per_param_near_N"]["range"]
    assert lo == pytest.approx(20.0, rel=1e-3) and hi == pytest.approx(640.0, rel=1e-3)  # M = 5 and 10 set aside
    assert p["distance"]["beyond_every_split"] is False
    assert p["interval"][0] < p["loss"] < p["interval"][1]
    # no bootstrap and no tied law here: the interval is exactly the half-width the row reports
    assert not out["choice"]["tied_laws"]
    hw = p["distance"]["half_width"]
    assert p["interval"] == pytest.approx([p["loss"] * (1 - hw), p["loss"] * (1 + hw)], rel=1e-9)
    assert p["distance"]["tokens_distance"] == pytest.approx(20 / 640)
    em = out["choice"]["error_model"]
    assert em["n_residuals"] == 24 and 0 < em["scale"] < 0.05
    assert out["short_runs"]["set_aside"] == 8 and out["short_runs"]["min_tokens_per_param"] == 20
    # sd = s sqrt(1 + c z_N^2 + c_t z_t^2), each z from the fitted design's means and sds
    z2_n = ((np.log(1.44e9) - em["centre_ln"][0]) / em["spread_ln"][0]) ** 2
    z2_t = ((np.log(20.0) - em["centre_ln"][1]) / em["spread_ln"][1]) ** 2
    assert p["distance"]["z"] ** 2 == pytest.approx(z2_n + z2_t)
    assert em["leverage_tokens_splits"] == 4 and em["leverage_tokens"] is not None
    assert hw == pytest.approx(1.6448536269514722 * em["scale"] * np.sqrt(1 + em["leverage"] * z2_n
                                                                          + em["leverage_tokens"] * z2_t))
    # every knob of the rule travels with its reason and what chose it
    knobs = out["choice"]["policy"]
    assert knobs["tie"]["value"] == POLICY.tie.value and knobs["leverage"]["value"] == POLICY.leverage.value
    assert all(knobs[k]["reason"] and knobs[k]["chosen_on"]
               for k in ("tie", "leverage", "scale_prior", "min_tokens_per_param"))


def test_checked_fit_measures_tokens_distance_at_the_nearest_fitted_size():
    checked = fit_checked(D.load("gadre2024:rpj/small"), allow_repeats=True)
    # 412M was fitted up to M = 640; 79M likewise: a 79M run at M = 1280 is 2x beyond
    assert checked.tokens_distance(78914048, 1280 * 78914048) == pytest.approx(2.0)
    assert checked.tokens_distance(1e9, 20 * 1e9) == pytest.approx(20 / 640)


@pytest.mark.slow
def test_seeded_ladders_10x_beyond_the_largest_size_are_covered_without_covering_by_width():
    # Six sizes 20M-1.2B from a known Chinchilla law with 0.4% noise; auto predicts 12B at
    # 20 tokens per parameter. The truth must lie inside the 90% interval in at least 5 of 6
    # seeds, and the interval must not be more than 3.5x the 90th-percentile error it needs
    # (each ladder's c is measured on its own backtest splits, whose fits of two or three
    # sizes err more than the fit of six does: here the intervals are 2.5x (20 seeds) to 3x
    # (these 6) as wide as needed, said in docs/analysis.md; with one c = 4 for every table
    # they were 3.3x to 3.7x).
    out = _study().synthetic_coverage(seeds=6)
    assert out["inside"] >= 5, out
    assert out["wider_than_needed"] < 3.5, out


def _study():
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "law_choice", Path(__file__).resolve().parents[1] / "docs" / "studies" / "law_choice.py")
    study = importlib.util.module_from_spec(spec)
    sys.modules["law_choice"] = study  # its dataclasses look their module up
    spec.loader.exec_module(study)
    return study


@pytest.mark.slow
def test_own_error_growth_holds_on_a_small_ladder_from_outside_the_law_family():
    # Four sizes 190M-1.3B at 0.5x-10x Chinchilla tokens from a law whose exponents differ
    # (alpha 0.34, beta 0.28), so auto's usual shared-exponent choice is the wrong family;
    # 3B, 7B and 13B asked (2.3x-10x out). The interval with the ladder's own c must still hold
    # at least 80% of the truths (52 of 64 here, as docs/analysis.md reports), and be narrower
    # than one c = 4 for every table.
    out = _study().four_size_coverage(seeds=16)
    assert out["own"]["inside"] >= 0.8 * out["n"], out
    assert out["own"]["median_half_width"] < 0.75 * out["c4"]["median_half_width"], out
    # no covering by width alone: the median half-width is within 5x the median error
    assert out["own"]["median_half_width"] < 5 * out["median_abs_error"], out


def test_auto_does_not_choose_a_law_whose_constraint_the_data_reject():
    # Porian et al. 2024, one configuration, its sizes up to an eighth of the largest (as the
    # leave-one-source-out study asks): gadre2024 wins the backtest, but Chinchilla's free fit
    # puts alpha and beta far apart; auto takes chinchilla, which predicts the larger sizes better.
    import math

    from analysis.fitting.fit import fit_law
    from analysis.selection.policy import bt_scores

    df = D.load("porian2024:rw/base/long/kaplan/standard/val")
    top = df["params"].max() / 8
    train = df[df["params"] <= top * 1.0001].reset_index(drop=True)
    test = df[(df["params"] > top * 1.0001) & (df["tokens"] >= 5 * df["params"])].reset_index(drop=True)
    checked = fit_checked(train)
    scores = bt_scores(checked.backtest, ["chinchilla", "gadre2024"])
    assert scores["gadre2024"] < scores["chinchilla"]  # the backtest alone would take gadre2024
    assert checked.fit.law == "chinchilla"
    assert "not chosen: gadre2024 (the data reject its alpha = beta" in checked.choice.reason
    # by hand: the Wald statistic of alpha = beta in Chinchilla's fit to the runs auto fits
    kept = train[train["tokens"] >= 20 * train["params"]]
    assert checked.fit.n_points == len(kept)
    free = fit_law(kept, "chinchilla", progress=False)
    sa, sb, r = free.stderr["alpha"], free.stderr["beta"], free.correl["alpha"]["beta"]
    assert abs(free.params["alpha"] - free.params["beta"]) / math.sqrt(sa * sa + sb * sb - 2 * r * sa * sb) > 3

    def held_out(law):
        pred = fit_law(kept, law, progress=False, uncertainty=False).predict_table(test)
        return float(np.mean(np.abs(np.asarray(pred) / test["loss"].to_numpy() - 1)))

    assert held_out("chinchilla") < held_out("gadre2024")


def test_a_tied_law_extends_the_error_models_interval_only_where_it_reaches_beyond_it():
    # The error model is measured on the chosen law's own held-out errors at distance (its
    # estimation error and its form's); the tied laws' spread estimates that error again, so it
    # extends the interval and is not added to it (docs/analysis.md, Law choice at distance).
    import dataclasses

    checked = fit_checked(D.load("porian2024:rw/tuned/short/const/standard/val"), allow_repeats=True)
    assert checked.fit.law == "gadre2024" and list(checked.tied) == ["chinchilla"]
    top = float(checked.fit.data_range["N"][1])
    N = np.array([3 * top, 10 * top])
    Dt = 20 * N
    pred = checked.fit.predict(N=N, D=Dt)
    other = checked.tied["chinchilla"].predict(N=N, D=Dt)
    em = checked.error_model
    z2_n = ((np.log(N) - em.centre[0]) / em.spread[0]) ** 2
    z2_t = ((np.log(Dt / N) - em.centre[1]) / em.spread[1]) ** 2
    w = 1.6448536269514722 * em.scale * np.sqrt(1 + em.leverage * z2_n + em.leverage_tokens * z2_t)
    assert np.all(np.abs(other / pred - 1) < w)  # chinchilla lies inside: the interval is the error model's
    lo, hi = checked.predict_interval(N=N, D=Dt, level=0.9, backtest_error=True)
    np.testing.assert_allclose(lo, pred * (1 - w), rtol=1e-10)
    np.testing.assert_allclose(hi, pred * (1 + w), rtol=1e-10)
    # an error model 100x narrower leaves chinchilla outside: its prediction is then that end
    checked.choice.error_model = dataclasses.replace(em, scale=em.scale / 100)
    lo, hi = checked.predict_interval(N=N, D=Dt, level=0.9, backtest_error=True)
    below = other < pred
    assert below.any()
    np.testing.assert_allclose(lo[below], other[below], rtol=1e-10)
    np.testing.assert_allclose(hi[below], pred[below] * (1 + w[below] / 100), rtol=1e-10)


def test_the_shared_exponent_check_gives_no_verdict_from_a_free_fit_that_ends_on_a_bound():
    # The demo's runs: auto sets chinchilla aside because its fit ends on a bound (E at 0), so
    # its standard errors test nothing; the check said "the data reject the shared exponent ...
    # prefer chinchilla or --law auto" under --law auto's own choice.
    from pathlib import Path

    from analysis.data.loading import load_points
    from analysis.fitting.fit import fit_law
    from analysis.fitting.result import bound_warnings
    from analysis.laws import get_law

    def shared_exponent_check(checked):
        (c,) = [c for c in checked.checks if c.name == "gadre2024's alpha = beta against chinchilla"]
        return c

    points = load_points(str(Path(__file__).resolve().parents[1] / "docs" / "data" / "demo_runs"))
    checked = fit_checked(points)
    assert checked.fit.law == "gadre2024" and "chinchilla (its fit ends on a bound)" in checked.choice.reason
    kept = points[points["tokens"] >= checked.short_runs["min_tokens_per_param"] * points["params"] * (1 - 1e-9)]
    free = fit_law(kept.reset_index(drop=True), "chinchilla", progress=False)
    assert bound_warnings(free.params, get_law("chinchilla").bounds)  # by hand: the free fit is on a bound
    c = shared_exponent_check(checked)
    assert c.status == "warn" and "cannot test the shared exponent" in c.detail and "prefer" not in c.detail
    # where the free fit is inside its box the verdict stands (the Porian configuration above)
    df = D.load("porian2024:rw/base/long/kaplan/standard/val")
    train = df[df["params"] <= df["params"].max() / 8 * 1.0001].reset_index(drop=True)
    c = shared_exponent_check(fit_checked(train, "gadre2024"))
    assert c.status == "warn" and "the data reject the shared exponent" in c.detail and "prefer chinchilla" in c.detail


def test_the_studys_interval_score_is_gneiting_and_rafterys():
    # eq. 43 of Gneiting and Raftery 2007, relative to y: width, plus 2/alpha times any miss
    score = _study().interval_score([0.9, 0.9, 0.9], [1.1, 1.1, 1.1], [1.0, 1.2, 0.8], 0.1)
    assert score == pytest.approx([0.2, (0.2 + 20 * 0.1) / 1.2, (0.2 + 20 * 0.1) / 0.8])


def test_the_scorecard_lists_the_checks_not_met_first_against_their_thresholds():
    # The leave-one-source-out study's summary of what it must show: each check against its
    # threshold, at the thresholds' edges, and the failed ones above the rest.
    study = _study()
    loso = {"gadre2024": {"inside": 15, "n": 18, "width": 3.0},      # 83% inside; 3.0x is within "at most 3x"
            "porian2024": {"inside": 227, "n": 284, "width": 3.01},   # 79.9% inside; just over 3x
            "muennighoff2023": {"inside": 56, "n": 70, "width": 2.4}}  # exactly 80%
    gadre = {"tables": 6, "answered": 6, "mean_gap": 0.0031, "worse_than_median": 1}
    tokens = {"gadre2024": {"pairs": 7, "inside": 6, "median_ratio": 0.8},
              "porian2024": {"pairs": 243, "inside": 218, "median_ratio": 0.94},
              "muennighoff2023": {"pairs": 6, "inside": 4, "median_ratio": 0.72}}
    seeded = {"inside": 51, "seeds": 60, "wider_than_needed": 1.6}
    four = {"own": {"inside": 58, "n": 64}, "n": 64}
    branch = {"inside": 200, "n": 288}
    rows = study.scorecard_rows(loso, gadre, tokens, seeded, four, branch)
    met = {r["check"]: r["met"] for r in rows}
    failed = {k for k, v in met.items() if not v}
    assert failed == {
        "Gadre et al.: the default's max error on the 1B and 7B above the per-table best single law's, "
        "averaged over the tables",                                       # 0.31 points > 0.3
        "Gadre et al.: tables on which the default's max error is worse than the median single law's",
        "Porian et al.: median half-width / median absolute error",
        "Porian et al.: held-out losses inside their 90% intervals",
        "Muennighoff et al.: measured tokens to match inside the 90% interval",  # 4 of 6
        "Seeded ladders of one run per size read at its branches, 1.8x to 3.5x out",
    }
    table = study.scorecard_table(rows).splitlines()
    body = [ln for ln in table if ln.startswith("| ") and not ln.startswith("| check")]
    assert [ln.endswith("| **NO** |") for ln in body] == [True] * 6 + [False] * (len(rows) - 6)
    assert "| 0.31 points |" in body[0]
    assert "| 227 of 284 (80%) |" in "\n".join(body)  # rounded in the text, judged unrounded
    assert table[-1].startswith(f"6 of {len(rows)} checks not met")

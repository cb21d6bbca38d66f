"""Compute-matched extrapolation against hand computations and published numbers.

Every expected value here is computed independently of analysis.extrapolation.extrapolate: by writing
the formula out with math, by a numerical root find on the law itself, or from the
numbers printed in the papers.
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from analysis.common.errors import InputError, TableError
from analysis.extrapolation.extrapolate import (ModelSpec, breakeven_inference_tokens, extrapolate, floor_loss,
                                               models_from_points, parse_models, parse_target, tokens_to_match)
from analysis.extrapolation.study import published_case
from analysis.fitting.result import LawFit

# A made-up law with Chinchilla-like exponents (not any published fit).
P = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}
N_T, D_T = 1e9, 2e10


def law_by_hand(N, D, p=P):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


# ------------------------------------------------------------------ LLaMA (Touvron et al. 2023, Table 15)

def test_llama_gpu_hour_and_6nd_multiples_to_three_significant_figures():
    case = published_case("llama")
    rows = {r["model"]: r for r in case.cost_rows()}
    # Table 15: 1,022,362 GPU-hours for 65B against 82,432 (7B), 135,168 (13B), 530,432 (33B).
    assert f"{rows['LLaMA-7B']['gpu_hour_multiple']:.3g}" == "12.4"
    assert f"{rows['LLaMA-13B']['gpu_hour_multiple']:.3g}" == "7.56"
    assert f"{rows['LLaMA-33B']['gpu_hour_multiple']:.3g}" == "1.93"
    # 6ND: (65.2e9 * 1.4e12) / (6.7e9 * 1e12) = 13.62; 13B: 7.02; 33B: (65.2 / 32.5) = 2.006.
    assert f"{rows['LLaMA-7B']['flops_6nd_multiple']:.3g}" == "13.6"
    assert f"{rows['LLaMA-13B']['flops_6nd_multiple']:.3g}" == "7.02"
    assert f"{rows['LLaMA-33B']['flops_6nd_multiple']:.3g}" == "2.01"
    assert "LLaMA-65B" not in rows


def test_llama_answers_under_the_published_laws():
    case = published_case("llama")
    hoff, besi = case.results
    assert hoff.law.name == "hoffmann2022" and besi.law.name == "besiroglu2024"
    c_t = 6 * 65.2e9 * 1.4e12
    assert hoff.target.flops == pytest.approx(c_t)
    hp = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022, Sec. 3.3
    l_t = law_by_hand(65.2e9, 1.4e12, hp)
    seven = hoff.models[0]
    assert seven.name == "LLaMA-7B"
    assert seven.loss_at_target_compute == pytest.approx(law_by_hand(6.7e9, c_t / (6 * 6.7e9), hp), rel=1e-12)
    d_star = (hp["B"] / (l_t - hp["E"] - hp["A"] / 6.7e9 ** hp["alpha"])) ** (1 / hp["beta"])
    assert seven.tokens_to_match == pytest.approx(d_star, rel=1e-10)
    # 33B beats 65B at equal compute under this law, so it is cheaper from the first token.
    assert hoff.models[2].wins_at_equal_compute and hoff.models[2].breakeven_inference_tokens == 0.0
    # Besiroglu et al.'s refit puts the 7B's floor E + A/N^alpha = 2.0015 above the 65B's 1.976.
    b7 = besi.models[0]
    assert not b7.reachable and b7.tokens_to_match is None and b7.breakeven_inference_tokens is None
    assert b7.floor == pytest.approx(1.8172 + 482.01 / 6.7e9 ** 0.3478, rel=1e-12)
    assert b7.floor > besi.target.loss
    # In words: Hoffmann's law has the 33B win at equal compute; the replication has the 65B win.
    assert hoff.summary()[0].endswith("the lowest loss is LLaMA-33B's (1.933).")
    assert besi.summary()[0].endswith("the lowest loss is LLaMA-65B's (1.976).")
    assert besi.summary()[-1] == "Never reaches the target's loss: LLaMA-7B (floor 2.002)."
    text = case.table()
    assert "never (floor 2.002)" in text and "12.4x" in text and "13.6x" in text
    assert "not LLaMA's losses" in text and "Besiroglu et al. 2024" in text and "Hoffmann et al. 2022" in text


# ------------------------------------------------------------------ closed forms

def test_compute_matched_loss_and_tokens_to_match_equal_closed_forms():
    fit = LawFit("chinchilla", P)
    res = extrapolate(fit, [ModelSpec(1e8, 5e9), ModelSpec(3e8, 1e10), ModelSpec(N_T, D_T)], target="largest")
    assert res.target.params == N_T and res.target.tokens == D_T
    c_t = 6 * N_T * D_T
    l_t = law_by_hand(N_T, D_T)
    assert res.target.flops == pytest.approx(c_t) and res.target.loss == pytest.approx(l_t, rel=1e-12)
    assert [m.params for m in res.models] == [1e8, 3e8]
    for m in res.models:
        n = m.params
        assert m.tokens_at_target_compute == pytest.approx(c_t / (6 * n), rel=1e-12)
        assert m.loss_at_target_compute == pytest.approx(law_by_hand(n, c_t / (6 * n)), rel=1e-12)
        d_star = (P["B"] / (l_t - P["E"] - P["A"] * n ** -P["alpha"])) ** (1 / P["beta"])
        assert m.tokens_to_match == pytest.approx(d_star, rel=1e-10)
        assert law_by_hand(n, m.tokens_to_match) == pytest.approx(l_t, rel=1e-10)
        assert m.flops_to_match == pytest.approx(6 * n * d_star, rel=1e-10)
        assert m.compute_multiple == pytest.approx(6 * n * d_star / c_t, rel=1e-10)
        assert m.compute_multiple_own == pytest.approx(d_star / m.tokens, rel=1e-10)
        assert m.loss == pytest.approx(law_by_hand(n, m.tokens)) and m.loss_source == "law"
        # A smaller model loses at equal compute here (the target is near compute-optimal).
        assert m.wins_at_equal_compute is False


def test_gadre_law_shares_one_exponent():
    fit = LawFit("gadre2024", {"E": 1.7, "A": 400.0, "B": 410.0, "eta": 0.3})
    p = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.3, "beta": 0.3}
    res = extrapolate(fit, [5e8], target=(N_T, D_T))
    l_t = law_by_hand(N_T, D_T, p)
    d_star = (410.0 / (l_t - 1.7 - 400.0 * 5e8 ** -0.3)) ** (1 / 0.3)
    assert res.models[0].tokens_to_match == pytest.approx(d_star, rel=1e-10)


def test_unreachable_target_is_reported_with_the_floor():
    fit = LawFit("chinchilla", P)
    n_small = 1e6
    floor = P["E"] + P["A"] / n_small ** P["alpha"]
    assert floor > law_by_hand(N_T, D_T)  # the premise of this test
    res = extrapolate(fit, [ModelSpec(n_small, 1e9)], target=(N_T, D_T))
    m = res.models[0]
    assert not m.reachable
    assert m.tokens_to_match is None and m.flops_to_match is None and m.compute_multiple is None
    assert m.breakeven_inference_tokens is None
    assert m.floor == pytest.approx(floor, rel=1e-12)
    assert m.loss_at_target_compute is not None  # the equal-compute question still has an answer
    assert f"never (floor {floor:.4g})" in res.table()
    d = res.to_dict()["models"][0]
    assert d["tokens_to_match"] == "never" and d["reachable"] is False
    row = res.to_frame().iloc[0]  # a table column of numbers keeps NaN/None, not the word
    assert row["tokens_to_match"] is None or row["tokens_to_match"] != row["tokens_to_match"]


def test_given_loss_target():
    fit = LawFit("chinchilla", P)
    res = extrapolate(fit, "1e8:5e9", target=2.6)
    m = res.models[0]
    assert m.tokens_to_match == pytest.approx((P["B"] / (2.6 - P["E"] - P["A"] * 1e8 ** -0.34)) ** (1 / 0.28))
    assert m.loss_at_target_compute is None and m.compute_multiple is None and m.breakeven_inference_tokens is None
    assert m.compute_multiple_own == pytest.approx(m.tokens_to_match / 5e9)


# ------------------------------------------------------------------ break-even (Sardana and Frankle 2023)

def test_breakeven_matches_a_hand_computation():
    fit = LawFit("chinchilla", P)
    n = 3e8
    m = extrapolate(fit, [n], target=(N_T, D_T)).models[0]
    d_star = m.tokens_to_match

    # Independent: the served volume T at which lifetime FLOPs are equal,
    # 6 n D* + 2 n T = 6 N_T D_T + 2 N_T T, found by a root find on the cost difference.
    def cost_gap(t):
        return (6 * n * d_star + 2 * n * t) - (6 * N_T * D_T + 2 * N_T * t)

    t_hand = brentq(cost_gap, 0.0, 1e20, xtol=1e-3)
    assert m.breakeven_inference_tokens == pytest.approx(t_hand, rel=1e-9)
    assert m.breakeven_inference_tokens > 0
    # Literal numbers: 7B on 40T tokens against 65B on 1.4T.
    t = breakeven_inference_tokens(6 * 7e9 * 4e13, 6 * 65e9 * 1.4e12, 2 * 7e9, 2 * 65e9)
    assert float(t) == pytest.approx((1.68e24 - 5.46e23) / (2 * 58e9), rel=1e-12)


def test_breakeven_is_zero_when_the_small_model_is_cheaper_to_train():
    assert float(breakeven_inference_tokens(1e20, 2e20, 2e9, 2e10)) == 0.0
    assert float(breakeven_inference_tokens(np.inf, 2e20, 2e9, 2e10)) == np.inf
    assert np.isnan(breakeven_inference_tokens(1e21, 2e20, 2e10, 2e10))  # not cheaper to serve


# ------------------------------------------------------------------ other laws: the root find

def test_kaplan_joint_law_root_find_matches_its_inversion():
    p = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    fit = LawFit("kaplan_nd", p)
    n, target = 5e9, (1e10, 1e10)
    res = extrapolate(fit, [n], target=target)
    l_t = ((p["N_c"] / 1e10) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / 1e10) ** p["alpha_D"]
    # Kaplan et al. 2020 eq. (1.5) solved for D by hand.
    d_hand = p["D_c"] / (l_t ** (1 / p["alpha_D"]) - (p["N_c"] / n) ** (p["alpha_N"] / p["alpha_D"]))
    assert d_hand > 0
    assert res.models[0].tokens_to_match == pytest.approx(d_hand, rel=1e-8)
    assert res.models[0].floor == pytest.approx((p["N_c"] / n) ** p["alpha_N"], rel=1e-12)
    # A model whose floor is above the target loss: unreachable through the root find too.
    tiny = extrapolate(fit, [1e5], target=target).models[0]
    assert not tiny.reachable


def test_saturating_curve_closed_form():
    q = {"E": 2.0, "B": 50.0, "beta": 0.3}
    d = tokens_to_match("saturating_power", q, 1e8, 2.5)
    assert float(d) == pytest.approx((50.0 / 0.5) ** (1 / 0.3))
    assert float(floor_loss("saturating_power", q, 1e8)) == 2.0
    assert np.isinf(tokens_to_match("saturating_power", q, 1e8, 1.9))


def test_laws_without_a_token_term_are_refused():
    with pytest.raises(InputError, match="kaplan_n"):
        extrapolate(LawFit("kaplan_n", {"N_c": 8.8e13, "alpha_N": 0.076}), [1e8], target=(1e9, 1e10))
    with pytest.raises(InputError, match="model-size"):
        extrapolate(LawFit("saturating_power", {"E": 2, "B": 5, "beta": 0.3}), [1e8], target=(1e9, 1e10))


# ------------------------------------------------------------------ intervals from bootstrap draws

def _fit_with_draws(n_draws=300, spread=0.03, seed=1):
    rng = np.random.default_rng(seed)
    base = np.array([P[k] for k in ("E", "A", "B", "alpha", "beta")])
    return LawFit("chinchilla", P, samples=base * rng.normal(1.0, spread, size=(n_draws, 5)), ci_level=0.9)


def test_intervals_are_the_draws_mapped_through_the_same_questions():
    fit = _fit_with_draws()
    n = 1e8
    res = extrapolate(fit, [ModelSpec(n, 5e9)], target=(N_T, D_T))
    m = res.models[0]
    # By hand, draw by draw.
    d_stars, losses, wins = [], [], []
    for E, A, B, alpha, beta in fit.samples:
        l_t = E + A / N_T ** alpha + B / D_T ** beta
        gap = l_t - E - A / n ** alpha
        d_stars.append((B / gap) ** (1 / beta) if gap > 0 else math.inf)
        lc = E + A / n ** alpha + B / (N_T * D_T / n) ** beta
        losses.append(lc)
        wins.append(lc < l_t)
    d_stars = np.array(d_stars)
    assert m.unreachable_fraction == pytest.approx(np.mean(np.isinf(d_stars)))
    assert 0 < m.unreachable_fraction < 0.5  # the spread was chosen so that some draws are unreachable
    lo, hi = m.intervals["tokens_to_match"]
    assert lo == pytest.approx(np.quantile(d_stars, 0.05, method="lower"), rel=1e-12)
    assert hi == pytest.approx(np.quantile(d_stars, 0.95, method="higher"), rel=1e-12)
    lo, hi = m.intervals["loss_at_target_compute"]
    assert lo == pytest.approx(np.quantile(losses, 0.05, method="lower"))
    assert hi == pytest.approx(np.quantile(losses, 0.95, method="higher"))
    assert lo < m.loss_at_target_compute < hi
    assert m.p_wins_at_equal_compute == pytest.approx(np.mean(wins))
    assert res.target.loss_interval[0] < res.target.loss < res.target.loss_interval[1]
    d = res.to_dict()
    assert d["level"] == 0.9 and d["law"]["bootstrap_draws"] == 300
    assert set(d["models"][0]["intervals"]) >= {"loss_at_target_compute", "tokens_to_match", "compute_multiple",
                                                 "breakeven_inference_tokens"}


def test_nan_draws_are_ignored():
    fit = _fit_with_draws(50)
    fit.samples[::5] = np.nan
    m = extrapolate(fit, [1e8], target=(N_T, D_T)).models[0]
    assert all(np.isfinite(v[0]) for v in m.intervals.values())


# ------------------------------------------------------------------ per-run curves beside the joint law

def test_per_run_curve_answers_sit_beside_the_joint_law():
    fit = LawFit("chinchilla", P)
    n = 3e8
    curve = LawFit("saturating_power", {"E": 1.9, "B": 300.0, "beta": 0.25}, n_points=40)
    res = extrapolate(fit, [ModelSpec(n, 5e9), ModelSpec(N_T, D_T)], curve_fits={n: curve})
    m = res.models[0]
    l_t = law_by_hand(N_T, D_T)
    assert m.curve["tokens_to_match"] == pytest.approx((300.0 / (l_t - 1.9)) ** (1 / 0.25), rel=1e-10)
    c_t = 6 * N_T * D_T
    assert m.curve["loss_at_target_compute"] == pytest.approx(1.9 + 300.0 * (c_t / (6 * n)) ** -0.25)
    assert m.curve["floor"] == 1.9 and m.curve["n_points"] == 40
    assert "own curve: tokens to match" in res.table()
    frame = res.to_frame()
    assert frame.loc[0, "curve_tokens_to_match"] == pytest.approx(m.curve["tokens_to_match"])


# ------------------------------------------------------------------ FLOP conventions

def test_detailed_flops_convention_uses_each_models_own_count():
    fit = LawFit("chinchilla", P)
    f_small, f_big = 7.5 * 1e8, 6.6 * N_T  # detailed counts per token, above 6N as attention adds work
    small, big = ModelSpec(1e8, 5e9, flops_per_token=f_small), ModelSpec(N_T, D_T, flops_per_token=f_big)
    res = extrapolate(fit, [small, big], flops="detailed")
    m = res.models[0]
    assert res.target.flops == pytest.approx(f_big * D_T)
    assert m.tokens_at_target_compute == pytest.approx(f_big * D_T / f_small)
    assert m.flops_to_match == pytest.approx(f_small * m.tokens_to_match)
    # Inference costs the forward pass: a third of the training cost per token.
    t = (f_small * m.tokens_to_match - f_big * D_T) / ((f_big - f_small) / 3)
    assert m.breakeven_inference_tokens == pytest.approx(t)
    assert "detailed" in res.to_dict()["flop_convention"]
    with pytest.raises(InputError, match="detailed"):
        extrapolate(fit, [1e8], target=(N_T, D_T), flops="detailed")


# ------------------------------------------------------------------ inputs

def test_models_from_points_take_each_sizes_largest_budget():
    pts = pd.DataFrame({"params": [1e8, 1e8, 3e8, 3e8], "tokens": [1e9, 4e9, 1e9, 4e9],
                        "loss": [3.5, 3.2, 3.3, 3.0], "run": ["a", "b", "c", "d"], "flops": [1, 2, 3, 4.0]})
    ms = models_from_points(pts)
    assert [(m.params, m.tokens, m.loss, m.run) for m in ms] == [(1e8, 4e9, 3.2, "b"), (3e8, 4e9, 3.0, "d")]
    res = extrapolate(LawFit("chinchilla", P), ms)
    assert res.target.params == 3e8 and res.target.loss_measured == 3.0
    assert res.models[0].loss == 3.2 and res.models[0].loss_source == "measured"
    with pytest.raises(TableError, match="loss"):
        models_from_points(pts.drop(columns="loss"))


@pytest.mark.parametrize("text, expected", [("largest", "largest"), ("2.05", 2.05), ("65e9:1.4e12", (65e9, 1.4e12))])
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("bad", ["banana", "-1", "65e9:", "0:1e12", "nan"])
def test_bad_targets_name_the_field(bad):
    with pytest.raises(InputError) as e:
        parse_target(bad)
    assert e.value.field == "target" and "\n" not in str(e.value)


def test_parse_models_and_errors():
    assert [(m.params, m.tokens) for m in parse_models("7e9, 13e9:1e12")] == [(7e9, None), (13e9, 1e12)]
    with pytest.raises(InputError, match="models"):
        parse_models("7e9,abc")
    with pytest.raises(InputError, match="no models"):
        parse_models(" , ")
    with pytest.raises(InputError, match="target"):
        extrapolate(LawFit("chinchilla", P), [1e8, 1e9])  # "largest" needs a model with tokens


# ------------------------------------------------------------------ from run records

def _write_sweep(root, sizes=(1e7, 3e7, 1e8), budgets=(4e8, 1.2e9), n_logged=12):
    """A sweep in the documented run-record format, losses drawn from the law P."""
    from analysis.common.records import JsonlAppender, atomic_write_json

    for n in sizes:
        for d in budgets:
            name = f"n={n:g},d={d:g}"
            run = root / name
            toks = np.linspace(d / n_logged, d, n_logged)
            with JsonlAppender(run / "metrics.jsonl", fsync=False) as out:
                for i, t in enumerate(toks):
                    loss = law_by_hand(n, t)
                    out.append({"step": i + 1, "tokens": t, "flops_6n": 6 * n * t, "flops": 7 * n * t, "lr": 1e-3,
                                "train_loss": loss + 0.01, "val_loss": loss, "wall_time": float(i)})
            atomic_write_json(run / "summary.json", {
                "schema_version": 1, "run_name": name, "status": "completed", "params": n,
                "params_nonembedding": 0.8 * n, "tokens": d, "tokens_trained": d, "flops": 7 * n * d,
                "flops_6n": 6 * n * d, "final_val_loss": law_by_hand(n, d), "config_hash": name})
    return root


def test_study_from_run_records_reads_each_runs_curve(tmp_path):
    from analysis.extrapolation.study import measured_curves, run_study

    sweep = _write_sweep(tmp_path / "sweep")
    study = run_study(sweep, law=LawFit("chinchilla", P))
    assert study.points is not None and len(study.points) == 6
    assert len(study.curves) == 6
    curve = study.curves["n=1e+08,d=1.2e+09"]
    assert list(curve["params"].unique()) == [1e8] and len(curve) == 12
    assert curve["loss"].iloc[-1] == pytest.approx(law_by_hand(1e8, 1.2e9))
    res = study.result
    assert res.target.params == 1e8 and res.target.tokens == 1.2e9
    assert [m.run for m in res.models] == ["n=1e+07,d=1.2e+09", "n=3e+07,d=1.2e+09"]
    # Each run's curve lies exactly on the law, so its own fit, L(D) = E' + B / D^beta with
    # E' = E + A / N^alpha, must give the joint law's answers.
    assert set(study.curve_fits) >= {1e7, 3e7}
    for m in res.models:
        c = study.curve_fits[m.params]
        assert c.params["E"] == pytest.approx(P["E"] + P["A"] / m.params ** P["alpha"], rel=1e-3)
        assert c.params["beta"] == pytest.approx(P["beta"], rel=1e-2)
        assert m.curve["floor"] == pytest.approx(m.floor, rel=1e-3)
        assert m.curve["loss_at_target_compute"] == pytest.approx(m.loss_at_target_compute, rel=1e-3)
        if m.reachable:
            assert m.curve["tokens_to_match"] == pytest.approx(m.tokens_to_match, rel=0.05)
        else:
            assert m.curve["tokens_to_match"] is None
    assert "own curve: tokens to match" in res.table()
    # The detailed convention reads 7N FLOPs per token from the records' flops column.
    detailed = run_study(sweep, law=LawFit("chinchilla", P), flops="detailed", curves=False).result
    assert detailed.target.flops == pytest.approx(7 * 1e8 * 1.2e9)
    assert measured_curves(sweep / "n=1e+07,d=4e+08", None).keys() == {"n=1e+07,d=4e+08"}


def test_models_not_smaller_than_the_target_are_left_out_with_a_warning():
    fit = LawFit("chinchilla", P)
    res = extrapolate(fit, "1e8:1e9,3e8:1e9,1e9:1e9", target="3e8:1e9")
    assert [m.params for m in res.models] == [1e8]
    assert res.warnings == ["left out 1B: not smaller than the target"]


# ------------------------------------------------------------------ Kaplan's N: non-embedding counts

KAPLAN = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}  # Kaplan et al. 2020, Table 2


def kaplan_by_hand(N, D, p=KAPLAN):
    """Kaplan et al. 2020, eq. (1.5), written out."""
    return ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]


def _ladder_with_embeddings():
    """Byte-level ladder shapes: total = non-embedding + 256 x d_model (tied embedding), so
    embeddings are 20% of the smallest model and 2% of the largest. Losses from the Kaplan
    law at the non-embedding count, as Kaplan et al. define N."""
    rows = []
    for d, ne in ((64, 106_816), (96, 332_832), (128, 853_888), (192, 2_213_568)):
        for tokens in (1.25e5, 2.5e5, 5e5, 1e6):
            rows.append({"params": ne + 256 * d, "params_nonembedding": ne, "tokens": tokens,
                         "loss": kaplan_by_hand(ne, tokens), "run": f"d{d}"})
    return pd.DataFrame(rows)


def test_a_law_on_non_embedding_n_is_evaluated_there_for_the_models_and_the_target():
    from analysis.extrapolation.study import run_study
    from analysis.fitting.fit import fit_law

    df = _ladder_with_embeddings()
    fit = fit_law(df, "kaplan_nd", progress=False)
    assert fit.n_column == "params_nonembedding"
    res = run_study(df, law=fit, curves=False).result
    big = df.iloc[-1]
    c_t = 6 * big["params"] * big["tokens"]  # FLOPs count every parameter, for every law
    assert res.target.flops == pytest.approx(c_t, rel=1e-12)
    assert res.target.law_params == big["params_nonembedding"]
    assert res.target.loss_law == pytest.approx(float(fit.predict(big["params_nonembedding"], big["tokens"])), rel=1e-12)
    # The fit recovers the generating law, so the target's loss is the measured one (at total
    # N it would be the loss of a model 2% larger; at the smallest size, 20% larger).
    assert res.target.loss == pytest.approx(big["loss"], rel=1e-3)
    assert not [w for w in res.warnings if "law predicts the target's loss" in w]
    for m in res.models:
        ne = float(df.loc[df["params"] == m.params, "params_nonembedding"].iloc[0])
        assert m.law_params == ne
        d_c = c_t / (6 * m.params)
        assert m.loss_at_target_compute == pytest.approx(float(fit.predict(ne, d_c)), rel=1e-12)
        assert m.loss_at_target_compute == pytest.approx(kaplan_by_hand(ne, d_c), rel=2e-3)
        # Tokens to match: the law at the non-embedding count reaches the target's loss there.
        assert float(fit.predict(ne, m.tokens_to_match)) == pytest.approx(res.target.loss, rel=1e-9)
        assert m.floor == pytest.approx((fit.params["N_c"] / ne) ** fit.params["alpha_N"], rel=1e-12)


def test_a_non_embedding_law_says_when_sizes_come_without_that_count():
    fit = LawFit("kaplan_nd", KAPLAN, meta={"inputs": {"N": "params_nonembedding"}})
    res = extrapolate(fit, [ModelSpec(1e8, 2e9, params_nonembedding=8e7), ModelSpec(1e9, 2e10)])
    assert res.models[0].law_params == 8e7 and res.target.law_params == 1e9
    assert res.target.loss == pytest.approx(kaplan_by_hand(1e9, 2e10), rel=1e-12)
    assert res.models[0].loss_at_target_compute == pytest.approx(kaplan_by_hand(8e7, 2e10 * 10), rel=1e-12)
    assert any("1B came without that count" in w for w in res.warnings)
    assert "N in the law: non-embedding parameters" in res.table()
    # Kaplan et al.'s own laws count N without embeddings as well; Chinchilla's with them.
    from analysis.data.published import published_law

    assert published_law("kaplan2020").n_column == "params_nonembedding"
    assert published_law("hoffmann2022").n_column == "params"


def test_the_answers_table_fits_116_columns_and_every_block_names_its_models():
    # with the own-curve column and bootstrap intervals the table is about 250 characters
    # wide; it is split into blocks of columns, each starting with the model column
    rng = np.random.default_rng(0)
    draws = np.array([[P[k] for k in ("E", "A", "B", "alpha", "beta")]]) * rng.normal(1, 0.01, (50, 5))
    fit = LawFit("chinchilla", P, samples=draws)
    specs = [ModelSpec(3e8, 5e9, name="small"), ModelSpec(6e8, 8e9, name="medium"), ModelSpec(N_T, D_T)]
    curves = {n: LawFit("saturating_power", {"E": 1.9, "B": 300.0, "beta": 0.25}, n_points=40) for n in (3e8, 6e8)}
    res = extrapolate(fit, specs, curve_fits=curves)
    rows = res.display_rows()
    wide = sum(max(len(k), *(len(r[k]) for r in rows)) + 2 for k in rows[0])
    assert wide > 116  # the premise: one table would not fit
    table = res.table(header=False).split("\n\n")[0]
    blocks = [b for b in res.table(header=False).split("\n\n") if b.startswith("model")]
    assert len(blocks) >= 2 and table == blocks[0]
    seen = []
    for b in blocks:
        lines = b.splitlines()[:2 + len(rows)]  # the header, its rule, one line per model (footnotes follow)
        assert all(len(ln) <= 116 for ln in lines)
        assert [ln.split("  ")[0].strip() for ln in lines[2:]] == [r["model"].strip() for r in rows]
        seen += [c for c in rows[0] if c in lines[0]]
    assert set(rows[0]) <= set(seen)  # every column is in some block


def test_a_measured_target_is_matched_at_its_measured_loss_whatever_the_law_says_there():
    # A Chinchilla-form ladder (Hoffmann et al. 2022, eq. 10) whose largest run measured 3%
    # above the law: the question is about that run, so every answer is where the small
    # model's law reaches the measured loss, by hand with brentq; the law's own value at the
    # target stays beside it, with its interval, and the output says the two disagree.
    from analysis.extrapolation.study import run_study
    from analysis.fitting.fit import fit_law

    truth = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}

    def law(n, d):
        return truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]

    rows = [{"params": n, "tokens": n * m, "loss": law(n, n * m)} for n in (1e7, 3e7, 1e8, 3e8) for m in (10, 20, 40)]
    df = pd.DataFrame(rows)
    fit = fit_law(df, "chinchilla", progress=False)
    target = ModelSpec(1e9, 2e10, loss=1.03 * law(1e9, 2e10))
    res = run_study(df, law=fit, target=target, models="1e8,3e8", curves=False).result
    assert res.target.loss == target.loss and res.target.loss_measured == target.loss
    assert res.target.loss_law == pytest.approx(law(1e9, 2e10), rel=1e-4)
    for m in res.models:
        by_hand = math.exp(brentq(lambda x: law(m.params, math.exp(x)) - target.loss, math.log(1e6), math.log(1e16)))
        assert m.tokens_to_match == pytest.approx(by_hand, rel=1e-3)
    assert any("the answers match the measured loss" in w for w in res.warnings)
    # the same size and tokens given as numbers, with the run in the table, is the same question
    measured = pd.concat([df, pd.DataFrame([{"params": 1e9, "tokens": 2e10, "loss": target.loss}])], ignore_index=True)
    again = run_study(measured, law=fit, target="1e9:2e10", models="1e8,3e8", curves=False).result
    assert again.target.loss == target.loss
    assert [m.tokens_to_match for m in again.models] == pytest.approx([m.tokens_to_match for m in res.models], rel=1e-12)


def test_a_target_measured_only_on_repeated_data_is_not_matched_at_that_loss():
    # Muennighoff et al. 2023's table holds its 8.67B at 178B tokens eight times, on 1 to 13.7
    # epochs of unique data; the question without a data limit is about the fresh-data run,
    # and a size whose every run repeated its data has no measured answer to that question.
    from analysis.data import datasets as D
    from analysis.extrapolation.specs import models_from_points
    from analysis.extrapolation.study import with_measured_loss

    df = D.load("muennighoff2023")
    big = df[df["params"] == df["params"].max()]
    top = big[big["tokens"] == big["tokens"].max()]
    assert len(top) > 2 and top["loss"].nunique() > 2
    fresh = top[top["unique_tokens"] >= top["tokens"] * (1 - 1e-6)]
    assert len(fresh) == 1
    (largest,) = [m for m in models_from_points(df) if m.params == df["params"].max()]
    assert largest.loss == pytest.approx(float(fresh["loss"].iloc[0]), rel=1e-12)
    repeated_only = top[top["unique_tokens"] < top["tokens"]]
    spec = ModelSpec(float(top["params"].iloc[0]), float(top["tokens"].iloc[0]))
    assert with_measured_loss(spec, repeated_only).loss is None
    assert with_measured_loss(spec, top).loss == largest.loss


def test_a_published_law_answers_for_its_own_value_at_a_measured_target():
    # hoffmann2022's losses are on MassiveText with its tokenizer: a table's measured loss is on
    # another scale, so a published law keeps its own value at the target (and says it)
    from analysis.data.published import published_law
    from analysis.extrapolation.study import run_study

    df = _ladder_with_embeddings()
    law = published_law("hoffmann2022")
    res = run_study(df, law=law, curves=False).result
    big = df.sort_values(["params", "tokens"]).iloc[-1]
    assert res.target.loss_measured == pytest.approx(big["loss"])
    assert res.target.loss == res.target.loss_law == pytest.approx(float(law.predict(big["params"], big["tokens"])))
    assert not res.target.matches_measured
    # the ladder's losses are Kaplan's, not MassiveText's: far from the published law, and said so
    assert abs(res.target.loss_measured / res.target.loss_law - 1) > 0.02
    assert any("the answers use the law's value" in w for w in res.warnings)


def test_a_models_own_runs_are_those_that_answer_the_question_asked():
    # Without a data limit a model's own runs are its fresh-data runs; under a limit of U
    # unique tokens, those that saw min(D, U) of them: the 2.81B's runs that repeated U count,
    # its fresh runs past U and its runs on other unique-token counts do not.
    from analysis.data import datasets as D
    from analysis.extrapolation.study import runs_of

    df = D.load("muennighoff2023")
    n = 2.81e9
    own = df[np.isclose(df["params"], n, rtol=1e-6)]
    u, d = own["unique_tokens"].to_numpy(float), own["tokens"].to_numpy(float)
    fresh = u >= d * (1 - 1e-6)
    assert fresh.any() and (~fresh).any()
    assert sorted(runs_of(df, n)["loss"]) == sorted(own["loss"][fresh])
    limit = float(np.sort(u[~fresh])[(~fresh).sum() // 2])  # a unique-token count this size repeated
    under = runs_of(df, n, limit)
    by_hand = own[np.isclose(u, np.minimum(d, limit), rtol=1e-6)]
    assert sorted(under["loss"]) == sorted(by_hand["loss"])
    assert ((under["unique_tokens"] == limit) & (under["tokens"] > limit)).any()  # repeated runs on U count
    assert not ((under["tokens"] > limit) & (under["unique_tokens"] != limit)).any()  # fresh ones past U do not


def test_a_never_answer_whose_loss_band_reaches_the_target_gets_an_interval_up_to_never():
    # the demo's atto: its law's floor (1.651) lies just above nano's measured 1.648, so the
    # point answer is never; the error model's band (+-w at atto's size and the tokens where
    # it is met) reaches below the floor, so the tokens to match run from where the band's
    # upper end is met to never
    from analysis.extrapolation.study import run_study

    study = run_study("docs/data/demo_runs", curves=False)
    r, fit = study.result, study.result.law
    assert fit.law == "gadre2024" and r.target.matches_measured
    atto = next(m for m in r.models if m.name == "atto")
    assert atto.tokens_to_match is None and atto.floor > r.target.loss
    p = fit.params

    def w(D):
        return float(study.checked.distance_half_width(atto.params, 0.90, D=D))

    def solve(f):  # gadre2024: L = E + A / N^eta + B / D^eta, solved for D by hand at L_T f
        return (p["B"] / (r.target.loss * f - p["E"] - p["A"] / atto.params ** p["eta"])) ** (1 / p["eta"])

    # the band's lower end at its own tokens: D_lo = solve(1 + w(D_lo)), from w at atto's size alone
    d_lo = solve(1 + w(None))
    for _ in range(200):
        d_lo, before = solve(1 + w(d_lo)), d_lo
    assert abs(math.log(d_lo / before)) < 1e-9
    lo, hi = atto.intervals["tokens_to_match"]
    assert lo == pytest.approx(d_lo, rel=1e-6) and hi == math.inf
    assert p["E"] + p["A"] / atto.params ** p["eta"] + p["B"] / lo ** p["eta"] == pytest.approx(
        r.target.loss * (1 + w(lo)), rel=1e-6)
    assert 0.5 < atto.unreachable_fraction < 0.95
    assert r.to_dict()["models"][0]["intervals"]["tokens_to_match"][1] == "never"
    from analysis.common.text import si
    assert f"atto: never at the fit's own values, but its 90% interval reaches the target's loss from {si(d_lo)} tokens on" in r.table()



def test_each_end_of_the_tokens_interval_takes_the_loss_error_at_its_own_tokens():
    # The error model's loss error grows with the distance in tokens per parameter, so the band
    # that bounds the tokens to match is taken where each end lies, not at the point answer:
    # D_hi solves L(N, D_hi) = L_t (1 - w(D_hi)) and D_lo solves L(N, D_lo) = L_t (1 + w(D_lo)),
    # found here by bisection on the demo's fit (gadre2024, no bootstrap, no tied law).
    from analysis.common.text import si
    from analysis.extrapolation.study import run_study

    study = run_study("docs/data/demo_runs", curves=False)
    r, fit = study.result, study.result.law
    p, L_t = fit.params, r.target.loss
    assert fit.law == "gadre2024" and r.target.matches_measured and not study.checked.tied

    def law(N, D):
        return p["E"] + p["A"] / N ** p["eta"] + p["B"] / D ** p["eta"]

    def band_end(m, sign, u_from, u_to):
        """First ln D from u_from toward u_to where L(N, D) = L_t (1 + sign w(D)); None if none."""
        def g(u):
            D = math.exp(u)
            return law(m.params, D) - L_t * (1 + sign * float(study.checked.distance_half_width(m.params, 0.90, D=D)))
        grid = np.linspace(u_from, u_to, 2001)
        vals = [g(u) for u in grid]
        for a, b, ga, gb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:]):
            if (ga > 0) != (gb > 0):
                for _ in range(100):
                    c = 0.5 * (a + b)
                    a, b, ga = (c, b, g(c)) if (g(c) > 0) == (ga > 0) else (a, c, ga)
                return math.exp(0.5 * (a + b))
        return None

    pico, femto = (next(m for m in r.models if m.name == n) for n in ("pico", "femto"))
    for m in (pico, femto):
        u = math.log(m.tokens_to_match)
        lo, hi = m.intervals["tokens_to_match"]
        assert lo == pytest.approx(band_end(m, +1, u, u - 5), rel=1e-6)
        d_hi = band_end(m, -1, u, u + 12)
        assert hi == (math.inf if d_hi is None else pytest.approx(d_hi, rel=1e-6))
    # pico's point answer (36 tokens per parameter) lies below the fitted design's centre, so the
    # band narrows toward its upper end: w at the point answer alone would end it later
    w0 = float(study.checked.distance_half_width(pico.params, 0.90, D=pico.tokens_to_match))
    first = (p["B"] / (L_t * (1 - w0) - p["E"] - p["A"] / pico.params ** p["eta"])) ** (1 / p["eta"])
    assert pico.intervals["tokens_to_match"][1] < first * 0.99
    # femto's band keeps the target inside it down to the floor: the upper end is never, and the
    # table says why (no bootstrap draw says so: its share of never is 0)
    assert femto.intervals["tokens_to_match"][1] == math.inf and femto.unreachable_fraction < 0.05
    assert "femto (41.1k)" in r.table() and f"{si(femto.tokens_to_match)} [" in r.table()
    assert "keeps the target inside the model's 90% band all the way down to its floor" in r.table()


def test_band_ends_settle_where_plain_iteration_would_circle_the_end():
    # ln reach(f) = u0 - a (f - 1) (the law's tokens at f x the target, slope 1/a) and a loss
    # error growing by b per e-fold of tokens: the lower end solves u = u0 - a w(u), whose
    # root u0 - a w0 / (1 + a b) plain iteration circles ever wider when a b > 1; the upper
    # end, u = u0 + a w(u), has no root above the point answer when a b > 1: never.
    from analysis.extrapolation.study import band_ends

    u0, a, b, w0 = math.log(1e9), 25.0, 0.06, 0.05

    def reach(f):  # as the law's inversion does, +inf past the largest float
        u = u0 - a * (f - 1)
        return math.exp(u) if u < 700 else math.inf

    def loss_error(D):
        return w0 + b * (math.log(D) - u0)

    lo, hi = band_ends(reach, loss_error, w0)
    assert math.log(lo) == pytest.approx(u0 - a * w0 / (1 + a * b), abs=1e-9)
    assert hi == math.inf
    # with a b < 1 both ends are the fixed points, reached by iteration
    b = 0.02
    lo, hi = band_ends(reach, loss_error, w0)
    assert math.log(lo) == pytest.approx(u0 - a * w0 / (1 + a * b), abs=1e-7)
    assert math.log(hi) == pytest.approx(u0 + a * w0 / (1 - a * b), abs=1e-7)

"""Loss-curve laws: schedule integration against direct sums, recovery from synthetic curves,
prediction of held-out schedules, and reading trainer records."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis.fitting.curves import (CurveFit, annealing_areas, fit_curve, luo_multipower, read_curve,
                             schedule_from_rows, tissue_annealing)
from analysis.common.errors import TableError
from analysis.fitting.result import LawFit
from analysis.fitting.io import load_result

T, W, PEAK = 2000, 100, 3e-3
STEPS = np.arange(1, T + 1)


def warmup(t):
    return PEAK * t / W


def cosine(t, floor=0.1):
    return np.where(t <= W, warmup(t), PEAK * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * (t - W) / (T - W)))))


def wsd(t, floor=0.1, frac=0.2):
    start = T - int(frac * T)
    return np.where(t <= W, warmup(t), np.where(t <= start, PEAK, PEAK * (1 - (1 - floor) * (t - start) / (T - start))))


def constant(t):
    return np.where(t <= W, warmup(t), PEAK)


def direct_s1_s2(eta, w, lam=0.999):
    """Tissue et al. 2024 by their definitions, with loops: S1 = sum eta; S2 = sum_i m_i,
    m_i = lam m_{i-1} + (eta_{i-1} - eta_i), starting at the end of warmup."""
    s1, s2, m, acc = [], [], 0.0, 0.0
    for i in range(len(eta)):
        if i >= w:
            m = lam * m + (eta[i - 1] - eta[i])
            acc += m
        s1.append(eta[: i + 1].sum())
        s2.append(acc)
    return np.array(s1), np.array(s2)


def direct_mpl(eta, w, steps, L0, A, alpha, B, C, beta, gamma):
    """Luo et al. 2025 eq. (6) by a double loop over k <= t (eta_0 = the peak at warmup end)."""
    out = []
    for t in steps:
        ld = 0.0
        for k in range(w + 1, t + 1):
            d = eta[k - 2] - eta[k - 1]
            if d:
                s = eta[k - 1: t].sum()
                ld += d * (1 - (C * eta[k - 1] ** (-gamma) * s + 1) ** (-beta))
        out.append(L0 + A * eta[:t].sum() ** (-alpha) - B * ld)
    return np.array(out)


def sparse(fn, law_values, every=20, noise=0.0, seed=0):
    """A log with a row every `every` steps, starting after warmup."""
    rng = np.random.default_rng(seed)
    steps = np.arange(W + every, T + 1, every)
    loss = law_values[steps - 1] * np.exp(rng.normal(0, noise, len(steps)))
    return pd.DataFrame({"step": steps, "lr": fn(steps), "loss": loss})


def test_schedule_rebuilt_from_sparse_rows_integrates_like_the_full_schedule():
    eta = wsd(STEPS)
    steps = np.arange(W, T + 1, 20)  # rows every 20 steps from the end of warmup: knots of the WSD lines
    sched = schedule_from_rows(steps, wsd(steps))
    assert sched.warmup_end == W and "linear warmup from 0" in sched.assumed
    np.testing.assert_allclose(sched.lr, eta, rtol=1e-12, atol=1e-15)
    s1, s2 = annealing_areas(sched)
    d1, d2 = direct_s1_s2(eta, W)
    np.testing.assert_allclose(s1, d1, rtol=1e-12)
    np.testing.assert_allclose(s2, d2, rtol=1e-9, atol=1e-15)
    # an explicit warmup shorter than the first logged row: ramp, then hold
    short = schedule_from_rows([200, 300], [PEAK, PEAK], warmup_steps=50)
    assert short.warmup_end == 50 and short.lr[49] == pytest.approx(PEAK) and short.lr[24] == pytest.approx(PEAK / 2)


def test_multipower_sum_matches_its_definition():
    eta = cosine(STEPS)
    sched = schedule_from_rows(STEPS, eta)
    p = dict(L0=2.4, A=0.8, alpha=0.5, B=300.0, C=2.0, beta=0.5, gamma=0.6)
    steps = np.array([150, 700, 1333, 2000])
    np.testing.assert_allclose(luo_multipower(sched, steps, **p), direct_mpl(eta, W, steps, **p), rtol=2e-4)


def test_annealing_law_recovers_its_parameters_from_a_cosine_curve_and_predicts_wsd():
    true = dict(L0=2.5, A=1.2, alpha=0.45, C=0.6)
    s1, s2 = direct_s1_s2(cosine(STEPS), W)
    cos_curve = sparse(cosine, tissue_annealing(s1, s2, **true), noise=5e-4, seed=1)
    fit = fit_curve(cos_curve, law="annealing", warmup_steps=W)
    assert fit.params["L0"] == pytest.approx(2.5, abs=0.05)
    assert fit.params["alpha"] == pytest.approx(0.45, abs=0.04)
    assert fit.params["C"] == pytest.approx(0.6, rel=0.05)
    w1, w2 = direct_s1_s2(wsd(STEPS), W)
    wsd_curve = sparse(wsd, tissue_annealing(w1, w2, **true), noise=5e-4, seed=2)
    err = fit.evaluate(wsd_curve, warmup_steps=W)
    assert err["mean_rel_error"] < 2e-3 and err["max_rel_error"] < 6e-3
    assert any("dropped" in n for n in fit.notes) or fit.curves[0]["n_used"] == len(cos_curve)
    assert fit.warnings == []  # every parameter determined, none on its bound


def test_a_parameter_pinned_to_its_bound_is_reported():
    # A curve on which annealing *raises* the loss (C < 0): the law's box holds C >= 0, so the
    # best fit puts C on 0, and the result must say so rather than report C = 0 as measured.
    true = dict(L0=2.5, A=1.2, alpha=0.45, C=-0.6)
    s1, s2 = direct_s1_s2(cosine(STEPS), W)
    fit = fit_curve(sparse(cosine, tissue_annealing(s1, s2, **true), noise=5e-4, seed=1), law="annealing",
                    warmup_steps=W)
    assert fit.params["C"] < 1e-6
    assert [w for w in fit.warnings if w.startswith("parameter C =") and "at its lower bound 0" in w], fit.warnings
    assert not [w for w in fit.warnings if w.startswith(("parameter L0", "parameter A ", "parameter alpha"))]
    assert "at its lower bound" in fit.report() and fit.to_dict()["warnings"] == fit.warnings


def test_multipower_fitted_on_constant_and_cosine_predicts_wsd():
    true = dict(L0=2.4, A=0.8, alpha=0.5, B=300.0, C=2.0, beta=0.5, gamma=0.6)
    obs = np.arange(W + 40, T + 1, 40)

    def curve(fn, seed):
        eta = fn(STEPS)
        loss = direct_mpl(eta, W, obs, **true) * np.exp(np.random.default_rng(seed).normal(0, 5e-4, len(obs)))
        return pd.DataFrame({"step": obs, "lr": fn(obs), "loss": loss})

    fit = fit_curve({"constant": curve(constant, 1), "cosine": curve(cosine, 2)}, law="multipower", warmup_steps=W)
    assert fit.params["L0"] == pytest.approx(2.4, abs=0.1)
    err = fit.evaluate(curve(wsd, 3), warmup_steps=W)
    # the multi-power paper reports 0.1-0.2% mean error on held-out schedules
    assert err["mean_rel_error"] < 2e-3, err
    assert [c["name"] for c in fit.curves] == ["constant", "cosine"]
    assert fit.warnings == []


def test_curve_fits_save_load_and_predict_every_row(tmp_path):
    true = dict(L0=2.5, A=1.2, alpha=0.45, C=0.6)
    s1, s2 = direct_s1_s2(cosine(STEPS), W)
    fit = fit_curve(sparse(cosine, tissue_annealing(s1, s2, **true)), law="annealing", warmup_steps=W)
    fit.save(tmp_path / "fit.json")
    back = load_result(tmp_path / "fit.json")
    assert isinstance(back, CurveFit) and back.params == fit.params
    schedule = pd.DataFrame({"step": np.arange(1, 3 * T + 1, 50)})
    schedule["lr"] = PEAK * 0.5
    pred = back.predict(schedule)
    assert list(pred.columns) == ["step", "lr", "loss_pred"] and len(pred) == len(schedule)
    assert np.all(np.diff(pred["loss_pred"].to_numpy()[5:]) < 0)  # constant LR: loss keeps falling


def test_read_curve_from_trainer_metrics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = []
    for s in range(1, 61):
        row = {"step": s, "tokens": 1000 * s, "flops": 1.0, "flops_6n": 1.0, "lr": 1e-3, "train_loss": 5 - s / 100,
               "wall_time": s}
        if s % 10 == 0:
            row["val_loss"] = 4.9 - s / 100
        rows.append(row)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = read_curve(run)
    assert c.attrs["loss_column"] == "val_loss" and c["loss"].notna().sum() == 6 and len(c) == 60
    assert c.attrs["name"] == "run" and "tokens" in c.columns
    t = read_curve(run / "metrics.jsonl", loss="train_loss")
    assert t["loss"].notna().sum() == 60


def test_saturating_power_uses_the_stable_phase_only():
    E, B, beta = 2.0, 80.0, 0.3
    steps = np.arange(10, T + 1, 10)
    lr = wsd(steps)
    tokens = steps * 4096.0
    loss = E + B * tokens ** (-beta)
    loss = np.where(lr < PEAK, loss - 0.05, loss)  # the cooldown drops below the stable-phase law
    fit = fit_curve(pd.DataFrame({"step": steps, "lr": lr, "tokens": tokens, "loss": loss}), law="saturating_power")
    assert isinstance(fit, LawFit) and fit.law == "saturating_power"
    assert fit.params["beta"] == pytest.approx(beta, abs=0.01) and fit.params["E"] == pytest.approx(E, abs=0.01)
    assert "stable phase only" in fit.meta["notes"][0]
    assert fit.n_points < len(steps)


def test_bad_curves_fail_with_one_line_errors(tmp_path):
    with pytest.raises(TableError, match="lr: the curve has no learning rates"):
        fit_curve(pd.DataFrame({"step": [200, 300, 400, 500, 600, 700], "loss": [3, 2.9, 2.8, 2.7, 2.6, 2.5]}),
                  law="annealing")
    with pytest.raises(TableError, match="usable points cannot determine"):
        fit_curve(pd.DataFrame({"step": [200, 300, 400], "lr": [1e-3] * 3, "loss": [3, 2.9, 2.8]}), law="annealing")
    (tmp_path / "c.csv").write_text("iteration,loss\n1,3\n")
    with pytest.raises(TableError, match="no step column"):
        read_curve(tmp_path / "c.csv")


def _tokens_to_reach(E, B, beta, loss):
    """D at which E + B / D^beta falls to ``loss`` (inf when the floor E lies at or above it)."""
    E, B, beta = (np.asarray(v, dtype=float) for v in (E, B, beta))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(E < loss, (B / (loss - E)) ** (1.0 / beta), np.inf)


def test_saturating_power_bootstrap_intervals_cover_the_true_answer():
    # Ground truth: a stable-phase curve from a known law, each logged loss off by 0.5%
    # Gaussian noise in log, as the demo's validation losses jitter. Over independent
    # noisy copies, the 90% interval of the tokens needed to reach a loss 15% beyond the
    # last point must hold the true answer about 90% of the time, and its width must be of
    # the size of the answer's actual spread over the copies (not a trivially wide band).
    E, B, beta, sigma = 1.35, 150.0, 0.42, 0.005
    tokens = np.geomspace(6e4, 1e6, 8)
    target = E + B / 2.5e6 ** beta
    truth = float(_tokens_to_reach(E, B, beta, target))
    rng = np.random.default_rng(3)
    covered, widths, points = 0, [], []
    copies = 16
    for i in range(copies):
        loss = (E + B / tokens ** beta) * np.exp(sigma * rng.standard_normal(len(tokens)))
        fit = fit_curve(pd.DataFrame({"step": np.arange(1, 9), "tokens": tokens, "loss": loss}),
                        law="saturating_power", bootstrap=60, seed=i)
        assert fit.meta["ci_method"] == "parametric bootstrap" and fit.samples.shape == (60, 3)
        s = fit.samples
        draws = _tokens_to_reach(s[:, 0], s[:, 1], s[:, 2], target)
        lo, hi = np.percentile(draws, [5, 95])
        covered += int(lo <= truth <= hi)
        widths.append(np.log(hi / lo) if np.isfinite(hi) else np.inf)
        points.append(np.log(float(_tokens_to_reach(fit.params["E"], fit.params["B"], fit.params["beta"], target))))
    assert covered >= 0.7 * copies, (covered, copies)
    spread = 2 * 1.645 * np.std([p for p in points if np.isfinite(p)])
    assert 0.4 * spread < np.median(widths) < 2.5 * spread, (np.median(widths), spread)


def test_saturating_power_without_bootstrap_keeps_asymptotic_intervals():
    tokens = np.geomspace(6e4, 1e6, 8)
    loss = 1.35 + 150.0 / tokens ** 0.42
    fit = fit_curve(pd.DataFrame({"step": np.arange(1, 9), "tokens": tokens, "loss": loss}), law="saturating_power")
    assert fit.samples is None and fit.meta["ci_method"] == "asymptotic"

"""Whole-sweep views: the frontier against its definition, every method side by side against
known allocations, sanity checks that catch what they claim to, and the figures built on them."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.common.errors import InputError
from analysis.extrapolation.extrapolate import ModelSpec, extrapolate, models_from_points
from analysis.extrapolation.study import Study
from analysis.reporting.overview import allocation_table, compute_frontier, fit_methods, parameter_table
from analysis.selection.checks import checks_markdown, law_checks
from analysis.reporting.plots import gids, plot_own_curves, plot_runs
from analysis.reporting.report import build_report
from analysis.fitting.result import AllocationFit, LawFit

P = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}
SIZES = (1e7, 3e7, 1e8, 3e8)
BUDGETS = (2e8, 6e8, 2e9, 6e9)


def _points(noise=0.0, seed=0, params=P):
    rng = np.random.default_rng(seed)
    rows = []
    for n, d in itertools.product(SIZES, BUDGETS):
        loss = float(LawFit("chinchilla", params).predict(n, d)) * (1 + noise * rng.normal())
        rows.append({"params": n, "tokens": d, "loss": loss, "run": f"N{n:g}"})
    return pd.DataFrame(rows)


def _curves(params=P):
    """One logged curve per size, on the law, from 1e8 tokens to the size's largest budget."""
    law = LawFit("chinchilla", params)
    out = {}
    for n in SIZES:
        d = np.geomspace(1e8, max(BUDGETS), 9)
        out[f"N{n:g}"] = pd.DataFrame({"params": n, "tokens": d, "loss": law.predict(n, d), "step": np.arange(9)})
    return out


# ---------------------------------------------------------------------------- frontier

def test_frontier_is_exactly_the_unbeaten_measurements():
    rng = np.random.default_rng(1)
    pts = pd.DataFrame({"params": rng.choice([1e6, 1e7, 1e8], 40), "tokens": 10 ** rng.uniform(8, 10, 40),
                        "loss": rng.uniform(2, 4, 40), "run": "r"})
    fr = compute_frontier(pts)
    c = 6 * pts["params"] * pts["tokens"]
    # The definition, by brute force: no other measurement with less or equal compute is lower.
    unbeaten = [i for i in pts.index if not ((c <= c[i]) & (pts["loss"] < pts["loss"][i])).any()]
    assert sorted(fr["loss"]) == sorted(pts.loc[unbeaten, "loss"])
    assert np.all(np.diff(fr["flops"]) > 0) and np.all(np.diff(fr["loss"]) < 0)
    assert np.allclose(fr["flops"], 6 * fr["params"] * fr["tokens"])


def test_frontier_uses_curves_and_moves_to_larger_models_with_compute():
    fr = compute_frontier(_points(), _curves())
    assert {"point", "curve"} >= set(fr["source"]) and len(fr) > len(SIZES)
    # On a Chinchilla law the compute-optimal size grows with compute (sampled curves cross
    # between samples, so the sizes along the frontier rise on the whole, not step by step).
    assert fr["params"].iloc[0] == min(SIZES) and fr["params"].iloc[-1] == max(SIZES)
    assert np.corrcoef(np.log(fr["flops"]), np.log(fr["params"]))[0, 1] > 0.8
    with pytest.raises(InputError):
        compute_frontier(None, {})


# ---------------------------------------------------------------------------- methods side by side

def test_allocation_table_matches_closed_forms_and_known_power_laws():
    law = LawFit("chinchilla", P)
    # An Approach-2 style fit with known exponents and prefactors.
    alloc = AllocationFit("approach2", {"a": 0.49, "b": 0.51, "k_N": 0.1, "k_D": 1.7},
                          ci={"a": (0.45, 0.53), "b": (0.47, 0.55)})
    C = 1e21
    tab = allocation_table({"approach3": law, "approach2": alloc, "approach1": "only 2 model size(s)"}, C,
                           published=("hoffmann2022", "kaplan2020"))
    rows = {r["method"]: r for r in tab.to_dict("records")}
    # Hoffmann et al. 2022, eq. 4: a = beta / (alpha + beta), b = alpha / (alpha + beta).
    assert rows["approach3"]["a"] == pytest.approx(0.28 / 0.62, rel=1e-6)
    assert rows["approach3"]["b"] == pytest.approx(0.34 / 0.62, rel=1e-6)
    assert rows["hoffmann2022"]["a"] == pytest.approx(0.28 / 0.62, rel=1e-6)
    assert rows["approach2"]["a"] == 0.49 and rows["approach2"]["a_low"] == 0.45
    assert rows["approach2"]["n_opt"] == pytest.approx(0.1 * C ** 0.49)
    assert rows["approach2"]["tokens_per_param"] == pytest.approx(1.7 * C ** 0.51 / (0.1 * C ** 0.49))
    # The optimum spends the whole budget: C = 6 N D.
    assert 6 * rows["approach3"]["n_opt"] * rows["approach3"]["d_opt"] == pytest.approx(C, rel=1e-6)
    # Kaplan's joint law along C = 6ND: N_opt ~ C^(alpha_D / (alpha_N + alpha_D)) (from eq. 1.5).
    assert rows["kaplan2020"]["a"] == pytest.approx(0.103 / (0.076 + 0.103), rel=1e-3)
    assert rows["approach1"]["note"] == "only 2 model size(s)" and np.isnan(rows["approach1"]["a"])


def test_methods_on_a_sweep_recover_the_law_and_say_why_others_do_not_apply():
    pts = _points(noise=0.002)
    fits = fit_methods(pts, pts, bootstrap=0, methods=("approach2", "approach3", "kaplan"))
    # This grid's 6ND values coincide across sizes (x3 sizes, x3 budgets): IsoFLOP profiles,
    # whose minima follow Hoffmann et al.'s eq. 4, a = beta / (alpha + beta).
    assert fits["approach2"].params["a"] == pytest.approx(0.28 / 0.62, abs=0.03)
    two = pts[pts["params"] <= 3e7]
    assert "model size" in fit_methods(two, two, bootstrap=0, methods=("approach1",))["approach1"]
    fit = fits["approach3"]
    assert fit.params["alpha"] == pytest.approx(0.34, abs=0.05) and fit.params["beta"] == pytest.approx(0.28, abs=0.05)
    tab = parameter_table(fits)
    row = tab[(tab["method"] == "approach3") & (tab["param"] == "beta")].iloc[0]
    assert row["value"] == fit.params["beta"] and row["hoffmann2022"] == 0.28 and row["besiroglu2024"] == 0.3658
    krow = tab[(tab["method"] == "kaplan") & (tab["param"] == "alpha_D")].iloc[0]
    assert krow["kaplan2020"] == 0.103 and np.isnan(krow["hoffmann2022"])
    with pytest.raises(InputError):
        fit_methods(pts, pts, methods=("approach4",))


# ---------------------------------------------------------------------------- sanity checks

def _status(checks):
    return {c.name: c.status for c in checks}


def test_checks_pass_on_a_good_fit_of_the_law():
    from analysis.fitting.fit import fit_law

    pts = _points(noise=0.003)
    st = _status(law_checks(fit_law(pts, "chinchilla"), pts))
    for name in ("loss falls with N", "loss falls with D", "exponents positive", "no parameter at a bound",
                 "measured loss falls with tokens in every run",
                 "measured loss falls with size at every shared budget"):
        assert st[name] == "ok", name


def test_checks_catch_a_bound_a_rising_law_and_non_monotone_measurements():
    bounds_e = LawFit("chinchilla", {**P, "E": 0.0}, data_range={"N": (1e7, 3e8), "D": (2e8, 6e9)})
    checks = law_checks(bounds_e)
    assert _status(checks)["no parameter at a bound"] == "fail" and "E" in checks[3].detail
    rising = LawFit("chinchilla", {**P, "A": -400.0}, data_range={"N": (1e7, 3e8), "D": (2e8, 6e9)})
    assert _status(law_checks(rising))["loss falls with N"] == "fail"
    assert _status(law_checks(rising))["loss falls with D"] == "ok"
    pts = _points()
    pts.loc[(pts["params"] == 3e7) & (pts["tokens"] == 2e8), "loss"] = 9.0  # worse than the smaller model
    by = {c.name: c for c in law_checks(LawFit("chinchilla", P, data_range={"N": (1e7, 3e8)}), pts)}
    assert by["measured loss falls with size at every shared budget"].status == "warn"
    assert "N=30M has 9" in by["measured loss falls with size at every shared budget"].detail
    assert by["measured loss falls with tokens in every run"].status == "ok"  # 9 is its size's first budget
    assert "| no parameter at a bound | ok |" in checks_markdown(law_checks(LawFit("chinchilla", P)))
    with pytest.raises(InputError):
        law_checks(LawFit("saturating_power", {"E": 1.0, "B": 1.0, "beta": 0.3}))


def test_poorly_identified_parameters_are_named():
    fit = LawFit("chinchilla", P, stderr={"E": 2.0, "A": 1.0, "B": 1.0, "alpha": 0.01, "beta": 0.01},
                 meta={"correl_centered": {"B": {"beta": -0.999}}})
    c = {c.name: c for c in law_checks(fit)}["every parameter identified"]
    assert c.status == "warn" and "parameter E" in c.detail and "B and beta" in c.detail


# ---------------------------------------------------------------------------- figures and report

def test_run_figures_draw_every_run_and_the_frontier():
    pts, curves = _points(), _curves()
    fig = plot_runs(pts, curves, x="tokens")
    assert len(gids(fig, "run:")) == len(curves) and len(gids(fig, "points:")) == len(SIZES)
    assert not gids(fig, "frontier")
    fig = plot_runs(pts, curves, x="flops")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = {ln.get_gid(): ln for ln in ax.lines}
    fr = compute_frontier(pts, curves)
    assert np.allclose(lines["frontier"].get_xdata(), fr["flops"])
    assert np.allclose(lines["frontier"].get_ydata(), fr["loss"])
    run = lines[f"run:N{SIZES[0]:g}"]
    assert np.allclose(run.get_xdata(), 6 * SIZES[0] * curves[f"N{SIZES[0]:g}"]["tokens"])
    with pytest.raises(InputError):
        plot_runs(pts, curves, x="tokens", frontier=True)
    with pytest.raises(InputError):
        plot_runs(pts, x="steps")


def test_own_curve_figure_marks_where_each_run_alone_reaches_the_target():
    law = LawFit("chinchilla", P)
    specs = [ModelSpec(n, max(BUDGETS), run=f"N{n:g}") for n in SIZES]
    # Each run's own curve: the law at fixed N, as E' + B / D^beta with E' = E + A / N^alpha.
    own = {n: LawFit("saturating_power", {"E": P["E"] + P["A"] / n ** P["alpha"], "B": P["B"], "beta": P["beta"]},
                     data_range={"D": (1e8, max(BUDGETS))}) for n in SIZES}
    res = extrapolate(law, specs, curve_fits=own)
    study = Study(points=None, fit=law, result=res, curves=_curves(), curve_fits=own)
    fig = plot_own_curves(study)
    lines = {ln.get_gid(): ln for ln in fig.axes[0].lines}
    assert len(gids(fig, "own-fit:")) == len(SIZES) - 1  # the target has nothing to extrapolate
    for m in res.models:
        if m.curve["tokens_to_match"] is not None and m.curve["tokens_to_match"] < 1e13:
            star = lines[f"cross:N={m.name}"]
            assert float(own[m.params].predict(D=star.get_xdata()[0])) == pytest.approx(res.target.loss, rel=1e-9)
    with pytest.raises(InputError):
        plot_own_curves(Study(points=None, fit=law, result=res))


def test_report_takes_extra_sections_and_figures(tmp_path):
    pts = _points()
    law = LawFit("chinchilla", P, n_points=16, n_sizes=4, n_budgets=4, method="test")
    study = Study(points=pts, fit=law, result=extrapolate(law, models_from_points(pts)))
    written = build_report(None, tmp_path, study=study, sections={"Sanity checks": "| a | b |\n|---|---|\n| 1 | 2 |"},
                           figures={"by_tokens.png": (plot_runs(pts, x="tokens"), "every run against tokens")})
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Sanity checks") < md.index("## Compute-matched extrapolation")
    assert "![every run against tokens](by_tokens.png)" in md
    assert written["by_tokens.png"].read_bytes().startswith(b"\x89PNG")
    with pytest.raises(InputError):
        build_report(None, tmp_path / "x", study=study, figures={"curves.png": (plot_runs(pts), "clash")})

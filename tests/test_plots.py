"""Figures: the right curves are drawn (counted by gid), files are real images, bad names are refused."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from analysis.common.errors import InputError
from analysis.extrapolation.extrapolate import ModelSpec, extrapolate, models_from_points
from analysis.reporting.plots import (figure_bytes, gids, plot_curves, plot_isoflop, plot_residuals, save_figure)
from analysis.fitting.result import LawFit

P = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}
SIZES = (1e7, 3e7, 1e8, 3e8)
BUDGETS = (2e8, 6e8, 2e9, 6e9)


def _points(noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for n in SIZES:
        for d in BUDGETS:
            loss = float(LawFit("chinchilla", P).predict(n, d)) * (1 + noise * rng.normal())
            rows.append({"params": n, "tokens": d, "loss": loss, "run": f"{n:g}-{d:g}"})
    return pd.DataFrame(rows)


def _draws(n=60, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([P[k] for k in ("E", "A", "B", "alpha", "beta")])
    return base * rng.normal(1.0, 0.005, size=(n, 5))


def _look(line):
    """How a line is drawn, colour aside: dashes, marker and width."""
    return (line.get_linestyle(), line.get_marker(), line.get_linewidth())


def test_curves_plot_draws_one_measured_and_one_law_curve_per_size():
    pts = _points()
    fit = LawFit("chinchilla", P, samples=_draws())
    res = extrapolate(fit, models_from_points(pts))
    fig = plot_curves(pts, fit, res)
    assert len(gids(fig, "measured:")) == len(SIZES)
    assert len(gids(fig, "fit:")) == len(SIZES)
    assert len(gids(fig, "band:")) == len(SIZES)
    assert gids(fig, "target") == ["target"]
    reachable = [m for m in res.models if m.reachable]
    assert len(gids(fig, "cross:")) == len(reachable) >= 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = {ln.get_gid(): ln for ln in ax.lines}
    legend = ax.get_legend()
    entries = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles)}
    beyond_entries = [h for label, h in entries.items() if "beyond" in label]
    assert len(beyond_entries) == 1  # one entry explains the extrapolated part of every curve
    # The target line sits at the target loss; each law curve, dashed over the model's fitted
    # budgets and dotted beyond, reaches the target-compute tokens.
    assert lines["target"].get_ydata()[0] == pytest.approx(res.target.loss)
    for m in res.models:
        fitted, beyond = lines[f"fit:N={m.name}"].get_xdata(), lines[f"extrapolation:N={m.name}"].get_xdata()
        assert (fitted.min(), fitted.max()) == pytest.approx((min(BUDGETS), max(BUDGETS)), rel=1e-12)
        assert beyond.min() == pytest.approx(max(BUDGETS), rel=1e-12)
        assert beyond.max() >= m.tokens_at_target_compute * (1 - 1e-9)
        # What a reader tells apart: one model's measured data, its law where fitted and its law
        # extrapolated share the model's colour but are drawn differently, and the legend shows
        # each way of drawing with its meaning.
        measured, law, extrapolated = (lines[f"{kind}:N={m.name}"] for kind in ("measured", "fit", "extrapolation"))
        assert len({to_hex(ln.get_color()) for ln in (measured, law, extrapolated)}) == 1
        assert len({_look(measured), _look(law), _look(extrapolated)}) == 3
        assert _look(entries[f"N={m.name} measured"]) == _look(measured)
        assert _look(entries[f"N={m.name} law"]) == _look(law)
        assert _look(beyond_entries[0]) == _look(extrapolated)
        # The tick marking where extrapolation starts sits on the seam of the two segments.
        tick = lines[f"extrapolation-start:N={m.name}"]
        assert (tick.get_xdata()[0], tick.get_ydata()[0]) == (extrapolated.get_xdata()[0], extrapolated.get_ydata()[0])
        assert law.get_xdata()[-1] == pytest.approx(extrapolated.get_xdata()[0], rel=1e-12)
    # A crossing marker lies where the law says the model reaches the target loss.
    m = reachable[0]
    star = lines[f"cross:N={m.name}"]
    assert star.get_xdata()[0] == pytest.approx(m.tokens_to_match)
    assert float(fit.predict(m.params, star.get_xdata()[0])) == pytest.approx(res.target.loss, rel=1e-9)


def test_law_is_drawn_from_each_models_fitted_budgets_and_marks_where_extrapolation_starts():
    # Each size fitted at its own budgets (the demo's per-size budgets); the logged curves
    # start far below them, at the first evaluation.
    budgets = {1e7: (4e8, 8e8, 1.6e9), 3e7: (2e8, 4e8), 1e8: (1e8, 2e8, 4e8)}
    pts = pd.DataFrame([{"params": n, "tokens": d, "loss": float(LawFit("chinchilla", P).predict(n, d)),
                         "run": f"r{n:g}"} for n, ds in budgets.items() for d in ds])
    curves = {f"r{n:g}": pd.DataFrame({"params": n, "tokens": np.geomspace(8e3, max(ds), 20),
                                       "loss": LawFit("chinchilla", P).predict(n, np.geomspace(8e3, max(ds), 20))})
              for n, ds in budgets.items()}
    fit = LawFit("chinchilla", P, data_range={"N": (1e7, 1e8), "D": (1e8, 1.6e9)})
    res = extrapolate(fit, models_from_points(pts))
    lines = {ln.get_gid(): ln for ln in plot_curves(pts, fit, res, curves=curves).axes[0].lines}
    for n, ds in budgets.items():
        tag = f"N={n / 1e6:g}M"
        fitted = lines[f"fit:{tag}"].get_xdata()
        # Not from the curves' first point (8k tokens): from the smallest budget fitted for that size.
        assert fitted.min() == pytest.approx(min(ds), rel=1e-12) and fitted.max() == pytest.approx(max(ds), rel=1e-12)
        if n == max(budgets):  # the target: drawn over its own budgets, nothing beyond
            assert f"extrapolation:{tag}" not in lines and f"extrapolation-start:{tag}" not in lines
            continue
        tick = lines[f"extrapolation-start:{tag}"]
        assert tick.get_xdata()[0] == pytest.approx(max(ds), rel=1e-12)
        assert tick.get_ydata()[0] == pytest.approx(float(fit.predict(n, max(ds))), rel=1e-12)
        beyond = lines[f"extrapolation:{tag}"].get_xdata()
        assert beyond.min() == pytest.approx(max(ds), rel=1e-12)
        y = lines[f"extrapolation:{tag}"].get_ydata()
        np.testing.assert_allclose(y, fit.predict(n, beyond), rtol=1e-12)


def test_curves_plot_uses_run_curves_when_given_and_works_without_data():
    fit = LawFit("chinchilla", P)
    res = extrapolate(fit, [ModelSpec(1e8, 2e9), ModelSpec(1e9, 2e10)])
    curves = {"r1": pd.DataFrame({"params": 1e8, "tokens": [1e8, 5e8, 2e9], "loss": [4.5, 3.9, 3.5]})}
    fig = plot_curves(None, fit, res, curves=curves)
    assert gids(fig, "measured:") == ["measured:r1"]
    assert len(gids(fig, "fit:")) == 2 and not gids(fig, "band:")


def test_isoflop_plot_has_one_profile_per_budget():
    # An IsoFLOP design: each budget C is shared by three sizes.
    rows = []
    budgets = (1e17, 1e18)
    for c in budgets:
        for n in (1e7, 3e7, 1e8):
            d = c / (6 * n)
            rows.append({"params": n, "tokens": d, "loss": float(LawFit("chinchilla", P).predict(n, d))})
    fig = plot_isoflop(pd.DataFrame(rows), LawFit("chinchilla", P))
    assert len(gids(fig, "isoflop-fit:")) == len(budgets)
    assert len(gids(fig, "isoflop-measured:")) == len(budgets)
    # The marked optimum is the law's minimum along the profile: no grid point is lower.
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines}
    for c in budgets:
        tag = f"C={c:.1e}"
        assert lines[f"isoflop-opt:{tag}"].get_ydata()[0] == pytest.approx(lines[f"isoflop-fit:{tag}"].get_ydata().min())


def test_residuals_are_zero_for_points_on_the_law_and_percent_otherwise():
    fit = LawFit("chinchilla", P)
    fig = plot_residuals(_points(), fit)
    assert len(gids(fig, "residual:")) == len(SIZES)
    for ln in fig.axes[0].lines:
        if ln.get_gid().startswith("residual:"):
            assert np.allclose(ln.get_ydata(), 0.0, atol=1e-10)
    pts = _points()
    pts.loc[0, "loss"] *= 1.02
    ys = {ln.get_gid(): ln.get_ydata() for ln in plot_residuals(pts, fit).axes[0].lines}
    assert ys["residual:N=10M"][0] == pytest.approx(2.0)


@pytest.mark.parametrize("ext, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_save_figure_writes_real_images(tmp_path, ext, magic):
    fig = plot_residuals(_points(), LawFit("chinchilla", P))
    path = save_figure(fig, tmp_path / f"fig.{ext}")
    data = path.read_bytes()
    assert data.startswith(magic) and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == [f"fig.{ext}"]  # no temporary left behind


def test_bad_figure_names_and_empty_inputs_are_refused(tmp_path):
    fig = plot_residuals(_points(), LawFit("chinchilla", P))
    with pytest.raises(InputError, match="png"):
        save_figure(fig, tmp_path / "fig.jpeg")
    with pytest.raises(InputError):
        figure_bytes(fig, "bmp")
    with pytest.raises(InputError):
        plot_residuals(_points().iloc[:0], LawFit("chinchilla", P))
    with pytest.raises(InputError):
        plot_curves(None, LawFit("chinchilla", P), None)


KAPLAN = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}  # Kaplan et al. 2020, Table 2


def _kaplan_by_hand(N, D, p=KAPLAN):
    return ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]


def test_a_law_on_non_embedding_n_is_drawn_at_each_models_non_embedding_count():
    # Embeddings: a quarter of the smallest model, a tenth of the largest.
    ne = {1e6: 7.5e5, 4e6: 3.2e6, 1e7: 9e6}
    pts = pd.DataFrame([{"params": n, "params_nonembedding": ne[n], "tokens": d,
                         "loss": _kaplan_by_hand(ne[n], d)} for n in ne for d in (1e7, 3e7, 1e8)])
    fit = LawFit("kaplan_nd", KAPLAN, meta={"inputs": {"N": "params_nonembedding"}})
    res = extrapolate(fit, models_from_points(pts))
    lines = {ln.get_gid(): ln for ln in plot_curves(pts, fit, res).axes[0].lines}
    for n in ne:
        x = np.concatenate([lines[g].get_xdata() for g in (f"fit:N={n / 1e6:g}M", f"extrapolation:N={n / 1e6:g}M")
                            if g in lines])
        y = np.concatenate([lines[g].get_ydata() for g in (f"fit:N={n / 1e6:g}M", f"extrapolation:N={n / 1e6:g}M")
                            if g in lines])
        np.testing.assert_allclose(y, _kaplan_by_hand(ne[n], x), rtol=1e-12)
    # IsoFLOP profiles in Kaplan's own convention: N non-embedding, C = 6ND with that N.
    fig = plot_isoflop(pts, fit, budgets=[1e15])
    ax = fig.axes[0]
    prof = {ln.get_gid(): ln for ln in ax.lines}["isoflop-fit:C=1.0e+15"]
    n_grid = prof.get_xdata()
    assert n_grid.min() == pytest.approx(min(ne.values()) / 2) and n_grid.max() == pytest.approx(max(ne.values()) * 2)
    np.testing.assert_allclose(prof.get_ydata(), _kaplan_by_hand(n_grid, 1e15 / (6 * n_grid)), rtol=1e-12)
    assert "non-embedding" in ax.get_xlabel()

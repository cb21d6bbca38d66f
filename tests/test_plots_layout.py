"""Figures as a reader sees them, read back from matplotlib's object model after layout:
tick labels where the answers lie and not colliding, legends beside the data, colours told
apart, answer markers that neither cover each other nor sit on another model's curve, and
titles that say what is drawn (extrapolated profiles, floors, systematic residuals)."""
from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from scipy.optimize import minimize_scalar

from analysis.extrapolation.extrapolate import ModelSpec, extrapolate, models_from_points
from analysis.extrapolation.study import Study, published_case
from analysis.reporting.figure_style import _segment_distance
from analysis.reporting.overview import compute_frontier
from analysis.reporting.plots import gids, plot_curves, plot_isoflop, plot_own_curves, plot_residuals, plot_runs
from analysis.selection.residual_trend import residual_trends
from analysis.fitting.result import LawFit
from analysis.common.text import si

# About the demo's fit (README): losses 1.2 to 5 over its logged curves, the target near 1.6.
DEMO = {"E": 0.63, "A": 667.0, "B": 66.5, "alpha": 0.67, "beta": 0.31}
SIZES = (1.23e5, 3.57e5, 8.86e5, 2.26e6)
BRANCHES = {1.23e5: 8e6, 3.57e5: 4e6, 8.86e5: 1e6, 2.26e6: 1e6}  # each size's run, branches at 1/8 .. 1


def _sweep(law=DEMO):
    fit = LawFit("chinchilla", law)
    pts = pd.DataFrame([{"params": n, "tokens": d * f, "loss": float(fit.predict(n, d * f)), "run": f"r{n:g}"}
                        for n, d in BRANCHES.items() for f in (0.125, 0.25, 0.5, 1.0)])
    curves = {}
    for n, d in BRANCHES.items():
        t = np.geomspace(8e3, d, 12)
        curves[f"r{n:g}"] = pd.DataFrame({"params": n, "tokens": t, "loss": fit.predict(n, t) * 1.04})
    return pts, curves


def _demo_figure():
    pts, curves = _sweep()
    fit = LawFit("chinchilla", DEMO, samples=np.array([DEMO[k] for k in ("E", "A", "B", "alpha", "beta")])
                 * np.random.default_rng(0).normal(1.0, 0.01, size=(40, 5)))
    res = extrapolate(fit, models_from_points(pts))
    return plot_curves(pts, fit, res, curves=curves), pts, fit, res


def _drawn(fig):
    """Draw ``fig`` as a PNG would be (Agg) and return the renderer its extents refer to."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _labels(ax, which="y"):
    """(value, text, bbox) of every visible tick label inside the view."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if which == "y" else ax.get_xlim())
    out = []
    for tick in axis.get_major_ticks():
        t = tick.label1
        if t.get_visible() and t.get_text() and lo <= tick.get_loc() <= hi:
            out.append((tick.get_loc(), t.get_text(), t.get_window_extent()))
    return out


def _title(ax) -> str:
    """The axes' title wherever it is placed (the loss axes put theirs on the left)."""
    return " ".join(t for t in (ax.get_title(loc=w) for w in ("left", "center", "right")) if t)


def _overlap(a, b, pad=0.0) -> bool:
    return a.x0 < b.x1 - pad and b.x0 < a.x1 - pad and a.y0 < b.y1 - pad and b.y0 < a.y1 - pad


def _legend_beside_data(fig):
    _drawn(fig)
    ax = fig.axes[0]
    leg, box, page = ax.get_legend().get_window_extent(), ax.get_window_extent(), fig.bbox
    assert not _overlap(leg, box), "the legend covers the data axes"
    assert page.x0 - 1 <= leg.x0 and leg.x1 <= page.x1 + 1 and page.y0 - 1 <= leg.y0 and leg.y1 <= page.y1 + 1
    # matplotlib keeps a left, centre and right title; the loss axes use the left one
    for t in (ax.title, ax._left_title, ax._right_title):
        if t.get_text():
            title = t.get_window_extent()
            assert page.x0 - 1 <= title.x0 and title.x1 <= page.x1 + 1, "the title runs off the figure"
            assert not _overlap(title, leg), "the title runs into the legend"


def _no_collisions(labels):
    for (_, ta, a), (_, tb, b) in itertools.combinations(labels, 2):
        assert not _overlap(a, b), f"tick labels {ta!r} and {tb!r} collide"


def _lab(rgb):
    """CIE L*a*b* (D65) of an sRGB colour, for colour differences a reader sees."""
    c = np.array(rgb, float)
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _marker_boxes(fig, prefixes=("cross:", "at_target_compute:")):
    ax = fig.axes[0]
    r = _drawn(fig)
    return {ln.get_gid(): ln.get_window_extent(r) for ln in ax.lines
            if ln.get_gid() and ln.get_gid().startswith(prefixes)}


# ---------------------------------------------------------------------------- curves

def test_curves_loss_axis_is_labelled_where_the_answers_lie():
    fig, _, _, res = _demo_figure()
    _drawn(fig)
    ax = fig.axes[0]
    labels = _labels(ax)
    target = res.target.loss
    near = [v for v, _, _ in labels if target / 1.2 <= v <= target * 1.2]
    assert len(near) >= 2, f"labels {[t for _, t, _ in labels]} leave the target's loss {target:.3g} bare"
    assert all(float(t) == pytest.approx(v) for v, t, _ in labels)  # the label says the tick's value
    _no_collisions(labels)
    _no_collisions(_labels(ax, "x"))


def test_curves_legend_is_beside_the_data_and_sizes_have_distinct_colours():
    fig, _, _, _ = _demo_figure()
    _legend_beside_data(fig)
    lines = {ln.get_gid(): ln for ln in fig.axes[0].lines}
    cols = [to_rgb(lines[f"fit:N={si(n)}"].get_color()) for n in SIZES]
    worst = min(np.linalg.norm(_lab(a) - _lab(b)) for a, b in itertools.combinations(cols, 2))
    assert worst > 25, f"two sizes' colours differ by only {worst:.1f} (CIE76 delta E)"


def test_curves_draws_the_fitted_points():
    fig, pts, _, _ = _demo_figure()
    lines = {ln.get_gid(): ln for ln in fig.axes[0].lines}
    for n in SIZES:
        ln = lines[f"points:N={si(n)}"]
        own = pts[pts["params"] == n].sort_values("tokens")
        np.testing.assert_allclose(ln.get_xdata(), own["tokens"])
        np.testing.assert_allclose(ln.get_ydata(), own["loss"])
        assert ln.get_linestyle() == "None" and ln.get_marker() == "o"
    assert any("fitted points" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_answer_markers_sit_on_their_values_and_crowded_ones_get_labels():
    # Two sizes 5% apart reach the target's loss a few percent apart in D: their stars would
    # collide. They stay where their values are; labels with leaders tell them apart.
    law = LawFit("chinchilla", DEMO)
    specs = [ModelSpec(1e6, 4e6), ModelSpec(1.05e6, 4e6), ModelSpec(3e6, 4e6)]
    res = extrapolate(law, specs)
    crosses = sorted(m.tokens_to_match for m in res.models)
    assert crosses[1] / crosses[0] < 1.1  # the premise: close enough to collide
    fig = plot_curves(None, law, res)
    _drawn(fig)
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines}
    for m in res.models:
        star = lines[f"cross:N={m.name}"]
        # drawn exactly at the answer: the marker's own transform maps its data where the axes put them
        drawn = star.get_transform().transform(star.get_xydata()[0])
        assert drawn == pytest.approx(ax.transData.transform((m.tokens_to_match, res.target.loss)))
    assert not [ln for ln in ax.lines if (ln.get_gid() or "").startswith("true-position:")]
    labels = {t.get_gid(): t for t in ax.texts if (t.get_gid() or "").startswith("label:")}
    crowded = {f"label:cross:N={m.name}" for m in res.models if m.params < 2e6}
    assert crowded <= set(labels), "each crowded star gets a label"
    for g, t in labels.items():
        assert t.xy == pytest.approx(tuple(lines[g.removeprefix("label:")].get_xydata()[0]))
        assert t.get_text() == g.split("N=", 1)[1]
    boxes = [t.get_window_extent() for t in labels.values()]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), "two labels overlap"


def test_published_law_plot_claims_no_measurements_and_draws_the_floor_that_stops_a_model():
    # Notebook 03's LLaMA figure: laws only, and under Besiroglu et al. the 7B never reaches the 65B.
    case = published_case("llama")
    res = next(r for r in case.results if r.law.name == "besiroglu2024")
    never = [m for m in res.models if not m.reachable]
    assert never and never[0].name == "LLaMA-7B"
    fig = plot_curves(result=res)
    title = _title(fig.axes[0])
    assert "measured" not in title and "dotted" not in title and "published" in title
    assert not gids(fig, "measured:") and not gids(fig, "extrapolation:")
    lines = {ln.get_gid(): ln for ln in fig.axes[0].lines}
    for m in res.models:
        key = f"floor:N={si(m.params)}"
        assert (key in lines) == (not m.reachable)
        if key in lines:
            # the floor is the law at D -> inf, E + A / N^alpha for this form
            p = res.law.params
            assert lines[key].get_ydata() == pytest.approx([p["E"] + p["A"] / m.params ** p["alpha"]] * 2, rel=1e-9)
            assert lines[key].get_ydata()[0] > res.target.loss
    _legend_beside_data(fig)


# ---------------------------------------------------------------------------- IsoFLOP profiles

def _isoflop_points(sizes, budgets=(1e12, 4e12)):
    law = LawFit("chinchilla", DEMO)
    return pd.DataFrame([{"params": n, "tokens": c / (6 * n), "loss": float(law.predict(n, c / (6 * n)))}
                         for c in budgets for n in sizes])


def _law_minimum(c):
    law = LawFit("chinchilla", DEMO)
    r = minimize_scalar(lambda x: float(law.predict(np.exp(x), c / (6 * np.exp(x)))), bounds=(np.log(1e3), np.log(1e9)),
                        method="bounded", options={"xatol": 1e-9})
    return float(np.exp(r.x))


@pytest.mark.parametrize("sizes, extrapolated", [((1e6, 3e6), True), ((3e4, 6e4, 1.2e5, 2.4e5, 4.8e5), False)])
def test_isoflop_says_when_its_profiles_and_minima_are_extrapolated(sizes, extrapolated):
    pts = _isoflop_points(sizes)
    fig = plot_isoflop(pts, LawFit("chinchilla", DEMO))
    ax = fig.axes[0]
    assert ("extrapolated" in _title(ax)) == extrapolated
    assert "FLOPs" in _title(ax)
    lines = {ln.get_gid(): ln for ln in ax.lines}
    for c in (1e12, 4e12):
        tag = f"C={c:.1e}"
        opt = lines[f"isoflop-opt:{tag}"]
        n_opt = _law_minimum(c)
        assert opt.get_xdata()[0] == pytest.approx(n_opt, rel=0.05)  # the grid's nearest point
        inside = min(sizes) <= n_opt <= max(sizes)
        hollow = opt.get_markerfacecolor() in ("white", "w", (1.0, 1.0, 1.0, 1.0))
        assert hollow == (not inside)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("minimum" in t and "extrapolated" in t for t in texts)
    assert any("minimum" in t and "within" in t for t in texts)
    assert all("FLOPs" in t for t in texts if t.startswith("C="))
    _legend_beside_data(fig)
    _no_collisions(_labels(ax, "x"))


def test_isoflop_with_four_sizes_around_the_minimum_is_not_called_extrapolated():
    c = 2e12
    n_opt = _law_minimum(c)
    pts = _isoflop_points([n_opt * f for f in (0.25, 0.5, 2.0, 4.0)], budgets=(c,))
    ax = plot_isoflop(pts, LawFit("chinchilla", DEMO)).axes[0]
    assert "extrapolated" not in _title(ax)
    opt = {ln.get_gid(): ln for ln in ax.lines}[f"isoflop-opt:C={c:.1e}"]
    assert opt.get_markerfacecolor() not in ("white", "w")


# ---------------------------------------------------------------------------- residuals

def test_residuals_are_unjoined_points_with_readable_ticks():
    pts, _ = _sweep()
    pts["loss"] *= 1 + 0.01 * np.random.default_rng(1).normal(size=len(pts))
    fig = plot_residuals(pts, LawFit("chinchilla", DEMO))
    ax = fig.axes[0]
    for ln in ax.lines:
        if ln.get_gid().startswith("residual:"):
            assert ln.get_linestyle() == "None" and ln.get_marker() not in ("", "None", None)
    _legend_beside_data(fig)
    _no_collisions(_labels(ax, "x"))
    _no_collisions(_labels(ax, "y"))


def test_a_law_of_the_wrong_form_is_flagged_and_noise_is_not():
    pts, _ = _sweep()
    rng = np.random.default_rng(3)
    noisy = pts.assign(loss=pts["loss"] * (1 + 0.005 * rng.normal(size=len(pts))))
    right = LawFit("chinchilla", DEMO)
    wrong = LawFit("chinchilla", {**DEMO, "beta": 0.45, "B": 250.0})  # a steeper data term: residuals trend in D
    assert not any(t.flagged for t in residual_trends(right, noisy))
    assert "no systematic trend" in _title(plot_residuals(noisy, right).axes[0])
    trends = {t.variable: t for t in residual_trends(wrong, noisy)}
    assert trends["tokens"].flagged
    ax = plot_residuals(noisy, wrong).axes[0]
    assert "systematic bias" in _title(ax) and "log D" in _title(ax)


def test_trend_test_matches_the_f_statistic_from_r_squared():
    # Independent route: numpy's polynomial fit and R^2, F = (R^2 / 2) / ((1 - R^2) / (n - 3)).
    from scipy import stats

    pts, _ = _sweep()
    fit = LawFit("chinchilla", {**DEMO, "beta": 0.35})
    r = np.log(pts["loss"].to_numpy() / fit.predict(pts["params"].to_numpy(), pts["tokens"].to_numpy()))
    x = np.log(pts["tokens"].to_numpy())
    r2 = 1 - np.sum((r - np.polyval(np.polyfit(x, r, 2), x)) ** 2) / np.sum((r - r.mean()) ** 2)
    n = len(r)
    f = (r2 / 2) / ((1 - r2) / (n - 3))
    t = {t.variable: t for t in residual_trends(fit, pts)}["tokens"]
    assert t.f == pytest.approx(f, rel=1e-8) and t.p == pytest.approx(stats.f.sf(f, 2, n - 3), rel=1e-8)


# ---------------------------------------------------------------------------- frontier and own curves

def test_frontier_strip_shows_the_size_holding_each_compute_range():
    pts, curves = _sweep()
    fig = plot_runs(pts, curves, x="flops")
    ax = fig.axes[0]
    fr = compute_frontier(pts, curves)
    colours = {n: to_rgb({ln.get_gid(): ln for ln in ax.lines}[f"run:r{n:g}"].get_color()) for n in SIZES}
    strips = [p for p in ax.collections if (p.get_gid() or "").startswith("wins:")]
    assert strips
    spans = []
    for s in strips:
        xs = s.get_paths()[0].vertices[:, 0]
        spans.append((xs.min(), xs.max(), to_rgb(s.get_facecolor()[0][:3])))
    for c, n in zip(fr["flops"], fr["params"]):
        # every frontier row lies in a strip of its own size's colour
        holders = [col for lo, hi, col in spans if lo * (1 - 1e-9) <= c <= hi * (1 + 1e-9)]
        assert any(np.allclose(col, colours[float(n)]) for col in holders), f"no strip of N={si(n)} at C={c:.3g}"
    # the strip lies below every measurement
    r = _drawn(fig)
    top = max(s.get_window_extent(r).y1 for s in strips)
    lowest = min(ax.transData.transform((x, y))[1] for ln in ax.lines if (ln.get_gid() or "").startswith("run:")
                 for x, y in ln.get_xydata())
    assert top < lowest
    _legend_beside_data(fig)
    _no_collisions(_labels(ax, "x"))
    _no_collisions(_labels(ax, "y"))


def _own_study(samples: bool, crossing: bool = True):
    law = LawFit("chinchilla", DEMO)
    pts, curves = _sweep()
    specs = [ModelSpec(n, d, run=f"r{n:g}") for n, d in BRANCHES.items()]
    rng = np.random.default_rng(0)
    own = {}
    for n in SIZES:
        p = {"E": DEMO["E"] + DEMO["A"] / n ** DEMO["alpha"], "B": DEMO["B"], "beta": DEMO["beta"]}
        draws = np.array([p["E"], p["B"], p["beta"]]) * rng.normal(1.0, 0.01, size=(50, 3)) if samples else None
        own[n] = LawFit("saturating_power", p, samples=draws, data_range={"D": (8e3, BRANCHES[n])})
    res = extrapolate(law, specs, curve_fits=own)
    if crossing:
        # the second size's own curve through the point where the first reaches the target:
        # both stars land on one spot, each on the other's curve (the demo's 886k and 123k)
        d1 = next(m for m in res.models if m.params == SIZES[0]).curve["tokens_to_match"]
        p0 = own[SIZES[0]].params
        e2 = p0["E"] - 0.1
        p2 = {"E": e2, "B": (res.target.loss - e2) * d1 ** p0["beta"], "beta": p0["beta"]}
        draws = np.array([p2["E"], p2["B"], p2["beta"]]) * rng.normal(1.0, 0.01, size=(50, 3)) if samples else None
        own[SIZES[1]] = LawFit("saturating_power", p2, samples=draws, data_range=own[SIZES[1]].data_range)
        res = extrapolate(law, specs, curve_fits=own)
    return Study(points=pts, fit=law, result=res, curves=curves, curve_fits=own), own


def test_own_curves_have_bands_from_their_draws_and_stars_on_other_curves_are_labelled():
    study, own = _own_study(samples=True)
    fig = plot_own_curves(study)
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines}
    bands = {c.get_gid(): c for c in ax.collections if (c.get_gid() or "").startswith("band:")}
    assert len(bands) == len(SIZES) - 1 and "no band" not in _title(ax)
    for m in study.result.models:
        fitted = lines[f"own-fit:N={m.name}"]
        lo, hi = own[m.params].predict_interval(D=fitted.get_xdata())
        verts = bands[f"band:N={m.name}"].get_paths()[0].vertices
        assert verts[:, 1].min() == pytest.approx(lo.min(), rel=1e-9)
        assert verts[:, 1].max() == pytest.approx(hi.max(), rel=1e-9)
        assert np.all(lo <= fitted.get_ydata() + 1e-12) and np.all(fitted.get_ydata() <= hi + 1e-12)
    _drawn(fig)
    px = fig.dpi / 72
    size_of = {**{f"measured:r{n:g}": si(n) for n in SIZES}, **{f"own-fit:N={si(n)}": si(n) for n in SIZES}}
    labels = {t.get_gid() for t in ax.texts if (t.get_gid() or "").startswith("label:")}
    for g, star in lines.items():
        if not g.startswith(("cross:", "at_target_compute:")):
            continue
        # the marker is drawn at its value...
        c = star.get_transform().transform(star.get_xydata()[0])
        assert c == pytest.approx(ax.transData.transform(star.get_xydata()[0]))
        for other, name in size_of.items():
            if name != g.split("N=", 1)[1] and other in lines:
                d = _segment_distance(c, ax.transData.transform(lines[other].get_xydata()))
                # ...and one that sits on another size's curve says whose it is
                assert d >= 0.4 * star.get_markersize() * px - 1e-6 or f"label:{g}" in labels, \
                    f"{g} sits on {other} unlabelled"
    _legend_beside_data(fig)


def test_own_curves_without_draws_say_there_is_no_band():
    study, _ = _own_study(samples=False)
    fig = plot_own_curves(study)
    assert "no band" in _title(fig.axes[0]) and not gids(fig, "band:")
    _no_collisions(_labels(fig.axes[0]))


def test_figure_modules_import_in_any_order():
    # analysis.reporting.plots imports plots_repetition and plots_overview at its top; they import only
    # the shared style module, so importing any of them first works.
    for first in ("analysis.reporting.plots_repetition", "analysis.reporting.plots_overview", "analysis.reporting.figure_style", "analysis.reporting.plots"):
        code = f"import {first}; import analysis.reporting.plots as p; assert p.plot_repetition.__module__ == " \
               "'analysis.reporting.plots_repetition'"
        subprocess.run([sys.executable, "-c", code], check=True)


def test_frontier_wins_are_the_stretches_between_changes_of_size():
    from analysis.reporting.plots_overview import frontier_wins

    fr = pd.DataFrame({"params": [1.0, 1.0, 2.0, 1.0], "flops": [10.0, 20.0, 30.0, 40.0]})
    assert frontier_wins(fr) == [(1.0, 10.0, 30.0), (2.0, 30.0, 40.0), (1.0, 40.0, 40.0)]


def test_a_size_cut_draws_the_left_out_sizes_hollow_and_their_law_dotted_with_many_sizes():
    """Ten sizes (a two-column legend) and a fit to the largest 7: the sizes the fit never saw
    are drawn with hollow markers and their law all dotted; the title and legend stay on the page."""
    from analysis.selection.checked import fit_checked
    from analysis.data.synthetic import bent_ladder
    from analysis.selection.size_cuts import largest_sizes

    df = bent_ladder(0, 0.08)
    checked = fit_checked(df, sizes="auto", progress=False)
    assert checked.keep < 1.0
    study = Study(points=df, fit=checked.fit, result=extrapolate(checked.fit, models_from_points(df)))
    fig = plot_curves(df, checked.fit, study.result)
    _legend_beside_data(fig)
    left_out = sorted(set(df["params"]) - set(largest_sizes(df, checked.keep)["params"]))
    assert sorted(g for g in gids(fig, "unfitted:")) == sorted(f"unfitted:N={si(n)}" for n in left_out)
    ax = fig.axes[0]
    for n in left_out:
        line = next(ln for ln in ax.lines if ln.get_gid() == f"unfitted:N={si(n)}")
        assert line.get_markerfacecolor() == "white"
        assert f"fit:N={si(n)}" not in gids(fig) and f"extrapolation:N={si(n)}" in gids(fig)
    assert f"fit:N={si(float(df['params'].max()))}" in gids(fig)


def test_measured_crossings_sit_where_each_models_own_runs_cross_the_target():
    # the committed demo runs: pico and femto cross nano's measured loss between two of their
    # budgets (diamonds there); atto never does (a hollow triangle at its longest run)
    from pathlib import Path

    from analysis.data.loading import load_points
    from analysis.extrapolation.study import run_study

    runs = Path(__file__).resolve().parents[1] / "docs" / "data" / "demo_runs"
    study = run_study(str(runs), law="gadre2024", curves=False, bootstrap=0)
    pts = load_points(str(runs))
    target = float(pts[pts["params"] == pts["params"].max()]["loss"].iloc[-1])
    fig = plot_curves(pts, study.fit, study.result)
    _drawn(fig)
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines}
    for n in sorted(pts["params"].unique())[:-1]:
        own = pts[pts["params"] == n].sort_values("tokens")
        t, l = own["tokens"].to_numpy(), own["loss"].to_numpy()
        marker = lines[f"measured-crossing:N={si(n)}"]
        below = np.flatnonzero(l <= target)
        if below.size:  # log-linear in tokens between the two budgets that bracket the target
            i = below[0]
            f = (l[i - 1] - target) / (l[i - 1] - l[i])
            expect = (np.exp(np.log(t[i - 1]) + f * np.log(t[i] / t[i - 1])), target)
            assert marker.get_marker() == "D"
        else:
            expect = (t[-1], target)
            assert marker.get_marker() == ">" and marker.get_markerfacecolor() == "white"
        drawn = marker.get_transform().transform(marker.get_xydata()[0])
        assert drawn == pytest.approx(ax.transData.transform(expect))
    assert sum(lines[g].get_marker() == "D" for g in lines if g and g.startswith("measured-crossing:")) == 2
    # one legend entry per kind of marker, whatever the number of models
    labels = [ln.get_label() for ln in ax.lines if (ln.get_gid() or "").startswith("measured-crossing:")]
    assert sorted(lb for lb in labels if not lb.startswith("_")) == [
        "its longest run, which never reached the target's loss", "where its own runs cross the target's loss"]

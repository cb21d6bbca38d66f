"""Stacked combinations of laws (analysis.laws.mix, analysis.selection.stacking) and auto choosing one."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis.selection.backtest import BacktestResult, BacktestRow, select_law
from analysis.common.errors import InputError
from analysis.fitting.fit import fit_law
from analysis.laws import LAWS, get_law
from analysis.laws.mix import mix_law, mix_name, parse_mix
from analysis.fitting.result import LawFit
from analysis.fitting.fit import fit_mix
from analysis.selection.stacking import combined_rows, stack_weights

CH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
KA = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}


def _table(seed=0, sizes=(2e7, 5e7, 1e8, 2e8, 4e8, 8e8), tpp=(10, 20, 40, 80)):
    """Points from an equal mix of the Chinchilla and Kaplan laws, 0.3% noise."""
    rng = np.random.default_rng(seed)
    N = np.repeat(sizes, len(tpp))
    D = N * np.tile(tpp, len(sizes))
    truth = 0.5 * LAWS["chinchilla"].fn(N, D, **CH) + 0.5 * LAWS["kaplan_nd"].fn(N, D, **KA)
    return pd.DataFrame({"params": N, "tokens": D, "loss": truth * np.exp(rng.normal(0, 0.003, len(N)))})


def test_a_combination_is_the_weighted_sum_of_its_laws():
    law = mix_law({"chinchilla": 0.3, "kaplan_nd": 0.7})
    N, D = np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5)
    params = {**{f"chinchilla.{k}": v for k, v in CH.items()}, **{f"kaplan_nd.{k}": v for k, v in KA.items()}}
    direct = 0.3 * (CH["E"] + CH["A"] / N ** CH["alpha"] + CH["B"] / D ** CH["beta"]) \
        + 0.7 * ((KA["N_c"] / N) ** (KA["alpha_N"] / KA["alpha_D"]) + KA["D_c"] / D) ** KA["alpha_D"]
    np.testing.assert_allclose(law.evaluate(params, N=N, D=D), direct, rtol=1e-12)
    assert law.exponents == ("chinchilla.alpha", "chinchilla.beta", "kaplan_nd.alpha_N", "kaplan_nd.alpha_D")
    # the numerical inversion finds the tokens at which the combination reaches a loss
    target = float(law.evaluate(params, N=1e8, D=3e10))
    assert law.tokens_to_match(params, 1e8, target) == pytest.approx(3e10, rel=1e-8)


def test_the_name_is_the_whole_definition():
    name = mix_name({"chinchilla": 0.6, "gadre2024": 0.0, "kaplan_nd": 0.4})
    assert name == "mix(chinchilla=0.6,kaplan_nd=0.4)"
    assert parse_mix(name) == {"chinchilla": 0.6, "kaplan_nd": 0.4}
    assert get_law(name) is mix_law(name)
    assert name not in LAWS  # combinations are not listed among the laws


@pytest.mark.parametrize("name, part", [
    ("mix(chinchilla=0.5,kaplan_nd=0.4)", "summing to 1"),
    ("mix(chinchilla=1)", "two or more laws"),
    ("mix(chinchilla=1.5,kaplan_nd=-0.5)", "negative"),
    ("mix(chinchilla=0.5,kaplan_n=0.5)", "not a fittable law of N and D"),
    ("mix(chinchilla=0.5,nope=0.5)", "not a fittable law of N and D"),
    ("mix(chinchilla:0.5)", "cannot read"),
])
def test_a_bad_combination_is_one_error_naming_the_law(name, part):
    with pytest.raises(InputError, match=part) as e:
        parse_mix(name)
    assert e.value.field == "law"


def _row(law, split, y, pred):
    rel = np.asarray(pred) / np.asarray(y) - 1
    return BacktestRow(law, split, split, 10, 4, len(y), float(np.mean(np.abs(rel))), float(np.max(np.abs(rel))),
                       float(np.mean(rel)), observed=list(y), pred=list(pred))


def test_stack_weights_find_the_combination_that_cancels_opposite_errors():
    # law a misses every held-out point 4% high, law b 2% low: 1/3 a + 2/3 b is exact;
    # law c errs both ways, so no combination with it is
    y = np.array([2.0, 2.5, 3.0])
    rows = []
    for split in ("largest_size", "largest_compute"):
        rows += [_row("a", split, y, y * 1.04), _row("b", split, y, y * 0.98), _row("c", split, y, y * np.array([1.1, 0.9, 1.0]))]
    res = BacktestResult(rows, ("a", "b", "c"))
    w, score = stack_weights(res, step=1 / 30)
    assert w == pytest.approx({"a": 1 / 3, "b": 2 / 3}, abs=1e-9)
    assert score == pytest.approx(0.0, abs=1e-12)
    comb = combined_rows(res, {"a": 0.5, "b": 0.5})
    assert [c["max_rel_error"] for c in comb] == pytest.approx([0.01, 0.01])


def test_auto_stacks_only_when_the_combination_beats_every_law_clearly():
    y = np.array([2.0, 2.5, 3.0])

    def result(err_b):
        rows = []
        for split in ("largest_size", "largest_compute"):
            rows += [_row("chinchilla", split, y, y * 1.04), _row("kaplan_nd", split, y, y * (1 - err_b))]
        return BacktestResult(rows, ("chinchilla", "kaplan_nd"))

    pts = _table()
    choice = select_law(pts, result=result(0.04))
    assert choice.weights == {"chinchilla": 0.5, "kaplan_nd": 0.5}
    assert choice.law == "mix(chinchilla=0.5,kaplan_nd=0.5)" and choice.score == pytest.approx(0.0, abs=1e-12)
    assert choice.reason.startswith("auto: mix(chinchilla=0.5,kaplan_nd=0.5), a stacked combination")
    assert select_law(pts, result=result(0.04), stack=False).weights is None
    # errors of the same sign cannot cancel: the combination is no better than the best law
    same = BacktestResult([_row("chinchilla", "largest_size", y, y * 1.04), _row("kaplan_nd", "largest_size", y, y * 1.02)],
                          ("chinchilla", "kaplan_nd"))
    assert select_law(pts, result=same).law == "kaplan_nd"


def test_fit_mix_is_its_components_fitted_alone_with_aligned_bootstrap_draws(tmp_path):
    pts = _table()
    name = "mix(chinchilla=0.5,kaplan_nd=0.5)"
    fit = fit_law(pts, name, bootstrap=8, seed=3, progress=False)
    parts = {n: fit_law(pts, n, bootstrap=8, seed=3, progress=False) for n in ("chinchilla", "kaplan_nd")}
    for n, f in parts.items():
        for p, v in f.params.items():
            assert fit.params[f"{n}.{p}"] == pytest.approx(v, rel=1e-12)
    np.testing.assert_allclose(fit.samples, np.hstack([parts["chinchilla"].samples, parts["kaplan_nd"].samples]))
    N, D = np.array([1.6e9, 3.2e9]), np.array([3.2e10, 6.4e10])
    np.testing.assert_allclose(fit.predict(N=N, D=D),
                               0.5 * parts["chinchilla"].predict(N=N, D=D) + 0.5 * parts["kaplan_nd"].predict(N=N, D=D),
                               rtol=1e-12)
    path = tmp_path / "fit.json"
    fit.save(path)
    back = LawFit.load(path)
    assert back.law == name
    np.testing.assert_allclose(back.predict(N=N, D=D), fit.predict(N=N, D=D), rtol=1e-12)
    assert json.loads(path.read_text())["law"] == name


def test_the_cli_fits_a_named_combination_and_refuses_a_bad_one(tmp_path, capsys):
    from scaling.app.cli import main

    path = tmp_path / "points.csv"
    _table().to_csv(path, index=False)
    # every run (--min-tpp 0), as the direct fits below take them
    assert main(["fit", str(path), "--law", "mix(chinchilla=0.5,kaplan_nd=0.5)", "--json", "--min-tpp", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"]["name"] == "mix(chinchilla=0.5,kaplan_nd=0.5)"
    direct = fit_law(_table(), "chinchilla", progress=False)
    assert out["law"]["params"]["chinchilla.E"] == pytest.approx(direct.params["E"], rel=1e-9)
    with pytest.raises(SystemExit) as e:
        main(["fit", str(path), "--law", "mix(chinchilla=0.7,kaplan_nd=0.4)"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "summing to 1" in err[0] and "argument --law" in err[0]


def test_extrapolation_intervals_cover_the_answers_of_the_laws_auto_could_not_rule_out():
    import copy

    from analysis.extrapolation.extrapolate import extrapolate
    from analysis.extrapolation.specs import models_from_points
    from analysis.extrapolation.study import widen_by_tied_laws

    pts = _table()
    chin = fit_law(pts, "chinchilla", bootstrap=8, seed=1, progress=False)
    kap = fit_law(pts, "kaplan_nd", progress=False)
    specs = models_from_points(pts)
    base = extrapolate(chin, specs, target="largest")
    wide = copy.deepcopy(base)
    widen_by_tied_laws(wide, {"kaplan_nd": kap}, specs, target="largest")
    other = extrapolate(kap, specs, target="largest")
    moved = 0
    for m0, m1, mk in zip(base.models, wide.models, other.models):
        assert m1.intervals.keys() == m0.intervals.keys() and m0.intervals
        for q, (lo, hi) in m1.intervals.items():
            assert lo <= m0.intervals[q][0] and hi >= m0.intervals[q][1]
            v = getattr(mk, q)
            if v is not None:
                assert lo <= v <= hi
                moved += (lo, hi) != m0.intervals[q]
    assert moved > 0  # the laws disagree on this table, so some interval grew
    assert wide.target.loss_interval[0] <= min(base.target.loss_interval[0], other.target.loss_law)

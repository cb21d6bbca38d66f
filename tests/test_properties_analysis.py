"""Property-based tests of the analysis side (hypothesis, derandomized so CI is stable).

* Any table either fits, giving finite parameters and finite positive predictions, or
  raises one of the toolkit's named errors: never another exception, never a NaN.
* A fitted law whose exponents are positive predicts a loss that never rises with N or D.
* A fit saved to JSON and loaded back predicts exactly what it predicted before, point
  estimates and intervals alike.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, given, reject, settings
from hypothesis import strategies as st

from analysis import laws
from analysis.data.loading import load_points
from analysis.common.errors import FitError, TableError, ToolkitError
from analysis.fitting.fit import FIT_LAWS, fit_law
from analysis.fitting.result import AllocationFit, LawFit
from analysis.fitting.io import load_result

#: Modest example counts keep this file under ~20 s on two busy cores.
FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FITS = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Shrinking a failing table through pandas takes minutes; the tables are small enough to
#: read unshrunk.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

#: Exponents of each law: positive ones make the loss fall with N, D (or C).
EXPONENTS = {"chinchilla": ("alpha", "beta"), "gadre2024": ("eta",), "kaplan_nd": ("alpha_N", "alpha_D"),
             "kaplan_n": ("alpha_N",), "kaplan_d": ("alpha_D",), "kaplan_c": ("alpha_C",),
             "data_constrained": ("alpha", "beta"), "muennighoff2023_decay": (), "hoffmann2022_decay": ()}
#: The laws a table of params, tokens and flops can be fitted with (a data-constrained law
#: also needs unique_tokens: tests/test_data_constrained.py fits those).
TABLE_LAWS = tuple(n for n in FIT_LAWS if all(k in ("N", "D", "C") for k in laws.get_law(n).inputs))

BAD_VALUES = [float("nan"), float("inf"), -float("inf"), 0.0, -1.0, -1e9, 1e-320, 1e308, "abc", None]


@st.composite
def tables(draw):
    """Tables of every quality: a grid of sizes and budgets with losses from a law, or from
    nowhere in particular, then possibly damaged: cells replaced by bad values, a column
    dropped or renamed, rows repeated, rows removed."""
    n_sizes = draw(st.integers(1, 5))
    n_budgets = draw(st.integers(1, 5))
    sizes = sorted(draw(st.lists(st.floats(1e5, 1e10), min_size=n_sizes, max_size=n_sizes)))
    budgets = sorted(draw(st.lists(st.floats(1e7, 1e12), min_size=n_budgets, max_size=n_budgets)))
    N, D = (a.ravel() for a in np.meshgrid(sizes, budgets, indexing="ij"))
    how = draw(st.sampled_from(["law", "noise", "constant", "rising"]))
    if how == "law":
        E, A, B = draw(st.floats(0.5, 3)), draw(st.floats(10, 1e4)), draw(st.floats(10, 1e4))
        a, b = draw(st.floats(0.05, 0.8)), draw(st.floats(0.05, 0.8))
        loss = laws.chinchilla(N, D, E, A, B, a, b)
        loss = loss * np.exp(np.random.default_rng(draw(st.integers(0, 99))).normal(0, 0.01, len(N)))
    elif how == "noise":
        loss = np.array(draw(st.lists(st.floats(0.1, 20), min_size=len(N), max_size=len(N))))
    elif how == "constant":
        loss = np.full(len(N), draw(st.floats(0.1, 20)))
    else:  # loss growing with N and D: no law with positive exponents fits it
        loss = 1.0 + 0.1 * np.log(N) + 0.1 * np.log(D)
    df = pd.DataFrame({"params": N, "tokens": D, "loss": loss})
    if draw(st.booleans()):
        df["run"] = [f"n{int(n)}" for n in N]
    df = df.astype(object)
    for _ in range(draw(st.integers(0, 3))):
        if len(df) and draw(st.integers(0, 2)) == 0:
            r = draw(st.integers(0, len(df) - 1))
            c = draw(st.sampled_from(["params", "tokens", "loss"]))
            df.iat[r, df.columns.get_loc(c)] = draw(st.sampled_from(BAD_VALUES))
    damage = draw(st.sampled_from(["none", "none", "none", "drop", "rename", "repeat", "shrink"]))
    if damage == "drop":
        df = df.drop(columns=[draw(st.sampled_from(["params", "tokens", "loss"]))])
    elif damage == "rename":
        df = df.rename(columns={"loss": draw(st.sampled_from(["val_loss", "Loss!", "final loss", "x"]))})
    elif damage == "repeat" and len(df):
        df = pd.concat([df, df.iloc[:1]], ignore_index=True)
    elif damage == "shrink":
        df = df.iloc[: draw(st.integers(0, len(df)))]
    return df


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@settings(FITS, phases=NO_SHRINK)
@given(df=tables(), law=st.sampled_from(TABLE_LAWS), policy=st.sampled_from(["raise", "omit"]))
def test_any_table_fits_or_raises_a_named_error(df, law, policy):
    try:
        points = _quiet(load_points, df, policy=policy)
        fit = _quiet(fit_law, points, law, progress=False)
    except ToolkitError as e:
        msg = str(e)
        assert msg and "\n" not in msg and e.field  # one line that names what was wrong
        return
    # A result is a number one can trust to be a number.
    assert all(math.isfinite(v) for v in fit.params.values()), fit.params
    with np.errstate(over="ignore"):
        pred = fit.predict(N=points["params"].to_numpy(), D=points["tokens"].to_numpy(),
                           C=points["flops"].to_numpy())
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)
    assert 0 < fit.n_points <= len(points)


def test_flops_that_overflow_when_derived_are_a_named_error():
    # 6ND of a finite but absurd N overflows; it must not reach a fit as inf.
    df = pd.DataFrame({"params": [1e308, 3.7e9, 3.8e9, 4e9], "tokens": [1e9, 1e8, 1e9, 1e10],
                       "loss": [1.5, 1.9, 1.8, 1.7]})
    with pytest.raises(TableError, match=r"flops: .*not finite \(rows 1\)"):
        _quiet(load_points, df)


def _flat(law_inputs: str) -> pd.DataFrame:
    if law_inputs == "N":
        return pd.DataFrame({"params": [1e6, 2e6, 4e6, 8e6], "tokens": 1e9, "loss": 2.0})
    if law_inputs == "D":
        return pd.DataFrame({"params": 1e8, "tokens": [1e8, 2e8, 4e8, 8e8], "loss": 2.0})
    N, D = np.meshgrid([5.9e9, 7.3e9, 9.5e9], [1e7, 6.8e11, 1e12], indexing="ij")
    return pd.DataFrame({"params": N.ravel(), "tokens": D.ravel(), "loss": 4.839412})


@pytest.mark.parametrize("law, inputs", [("kaplan_n", "N"), ("kaplan_d", "D"), ("kaplan_nd", "ND")])
def test_a_flat_loss_is_refused_by_the_pure_power_laws(law, inputs):
    # With no fall in the loss, (X_c / X)^alpha has alpha -> 0 and X_c -> infinity: no law.
    with pytest.raises(FitError, match="loss: .* the loss does not fall"):
        _quiet(fit_law, _flat(inputs), law, progress=False)


def _fit_or_reject(df, law, **kw):
    """The fit, or no example: where noise swamps a tiny exponent, the pure power laws are
    refused with a FitError (tested above), and there is no fitted law to check."""
    try:
        return _quiet(fit_law, df, law, progress=False, **kw)
    except FitError:
        reject()


def _synthetic(p: dict, sizes, budgets, seed, family: str = "chinchilla") -> pd.DataFrame:
    """Points on a grid of sizes and budgets from a law of the given family, with 0.5% noise."""
    N, D = (a.ravel() for a in np.meshgrid(sizes, budgets, indexing="ij"))
    if family == "chinchilla":
        loss = laws.chinchilla(N, D, p["E"], p["A"], p["B"], p["alpha"], p["beta"])
    else:  # Kaplan et al. 2020's joint law, at their fitted constants scaled by the drawn factors
        loss = laws.kaplan_nd(N, D, 8.8e13 * p["A"] / 500, 5.4e13 * p["B"] / 500, p["alpha"] / 4, p["beta"] / 4)
    loss = loss * np.exp(np.random.default_rng(seed).normal(0, 0.005, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss})


law_params = st.fixed_dictionaries({"E": st.floats(1.0, 2.5), "A": st.floats(50, 2000), "B": st.floats(50, 2000),
                                    "alpha": st.floats(0.15, 0.6), "beta": st.floats(0.15, 0.6)})
SIZES, BUDGETS = [1e6, 3e6, 1e7, 3e7, 1e8], [1e8, 4e8, 1.6e9, 6.4e9]


@settings(FITS, phases=NO_SHRINK)
@given(p=law_params, law=st.sampled_from(TABLE_LAWS), seed=st.integers(0, 1000))
def test_fitted_laws_with_positive_exponents_never_predict_a_rise_with_n_or_d(p, law, seed):
    family = "kaplan" if law.startswith("kaplan") else "chinchilla"
    df = _synthetic(p, SIZES, BUDGETS, seed, family)
    fit = _fit_or_reject(df, law)
    assume(all(fit.params[e] > 0 for e in EXPONENTS[law]))
    # from 100x below the data to 100x above it, on both axes
    n_grid, d_grid = np.logspace(4, 10, 150), np.logspace(6, 11.8, 150)
    for fixed_n, fixed_d in ((1e4, 1e6), (1e7, 1e9), (1e10, 6e11)):
        along_n = fit.predict(N=n_grid, D=np.full_like(n_grid, fixed_d), C=6 * n_grid * fixed_d)
        along_d = fit.predict(N=np.full_like(d_grid, fixed_n), D=d_grid, C=6 * fixed_n * d_grid)
        for curve in (along_n, along_d):
            assert np.all(np.isfinite(curve)) and np.all(curve > 0)
            assert np.all(np.diff(curve) <= 1e-12 * curve[:-1]), "loss rose with more parameters or data"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow at extreme random parameters
@FAST
@given(law=st.sampled_from(FIT_LAWS), data=st.data())
def test_any_law_with_positive_parameters_is_monotone(law, data):
    """The same property on the formulas themselves, over a wide range of parameters."""
    lawobj = laws.get_law(law)
    params = {}
    for name in lawobj.params:
        if name in EXPONENTS[law]:
            params[name] = data.draw(st.floats(0.01, 2.0), label=name)
        elif name == "E":
            params[name] = data.draw(st.floats(0.0, 5.0), label=name)
        else:
            params[name] = data.draw(st.floats(1e-3, 1e15), label=name)
    fit = LawFit(law=law, params=params)
    grid = np.logspace(0, 15, 120)
    other = data.draw(st.floats(1e3, 1e13), label="fixed")
    for N, D in ((grid, np.full_like(grid, other)), (np.full_like(grid, other), grid)):
        curve = fit.predict(N=N, D=D, C=6 * N * D)
        finite = np.isfinite(curve)
        assert np.all(np.diff(curve[finite]) <= 1e-12 * np.abs(curve[finite][:-1]))


def _roundtrip(fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "fit.json"
    fit.save(path)
    return load_result(path)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow at extreme random parameters
@FAST
@given(law=st.sampled_from(FIT_LAWS), data=st.data())
def test_saved_and_loaded_law_fits_predict_identically(law, data, tmp_path_factory):
    lawobj = laws.get_law(law)
    params = {p: data.draw(st.floats(1e-3, 1e6), label=p) for p in lawobj.params}
    n_draws = data.draw(st.integers(0, 30), label="draws")
    rng = np.random.default_rng(data.draw(st.integers(0, 10_000), label="seed"))
    samples = None
    if n_draws:
        samples = np.array([[params[p] * math.exp(rng.normal(0, 0.05)) for p in lawobj.params]
                            for _ in range(n_draws)])
    fit = LawFit(law=law, params=params, samples=samples, ci_level=data.draw(st.floats(0.5, 0.99), label="level"),
                 data_range={"N": (1e6, 1e8), "D": (1e8, 1e10)}, warnings=["a warning"], n_points=7)
    back = _roundtrip(fit, tmp_path_factory)
    assert isinstance(back, LawFit) and back.params == fit.params
    N = np.logspace(5, 11, 13)
    D = np.logspace(7, 13, 13)
    kw = dict(N=N, D=D, C=6 * N * D)
    np.testing.assert_array_equal(back.predict(**kw), fit.predict(**kw))
    if samples is None:
        assert back.predict_interval(**kw) is None
    else:
        for a, b in zip(back.predict_interval(**kw), fit.predict_interval(**kw)):
            np.testing.assert_array_equal(a, b)
    assert back.extrapolation_warnings(N=1e12) == fit.extrapolation_warnings(N=1e12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow at extreme random parameters
@settings(FITS, phases=NO_SHRINK)
@given(p=law_params, law=st.sampled_from(TABLE_LAWS), seed=st.integers(0, 1000), boot=st.sampled_from([0, 6]))
def test_real_fits_survive_the_round_trip(p, law, seed, boot, tmp_path_factory):
    df = _synthetic(p, [1e6, 3e6, 1e7, 3e7], [1e8, 4e8, 1.6e9], seed,
                    "kaplan" if law.startswith("kaplan") else "chinchilla")
    fit = _fit_or_reject(df, law, bootstrap=boot, n_jobs=1)
    back = _roundtrip(fit, tmp_path_factory)
    kw = dict(N=df["params"].to_numpy() * 10, D=df["tokens"].to_numpy() * 10,
              C=60 * df["params"].to_numpy() * df["tokens"].to_numpy())
    np.testing.assert_array_equal(back.predict(**kw), fit.predict(**kw))
    assert back.params == fit.params
    np.testing.assert_equal(back.ci, fit.ci)  # NaN bounds (failed refits) compare equal
    np.testing.assert_equal(back.stderr, fit.stderr)
    if boot:
        np.testing.assert_array_equal(back.samples, fit.samples)
        for a, b in zip(back.predict_interval(**kw), fit.predict_interval(**kw)):
            np.testing.assert_array_equal(a, b)


def test_nan_interval_bounds_survive_the_round_trip(tmp_path_factory):
    # JSON has no NaN: a bound from failed refits is stored as null and must load as NaN.
    fit = LawFit(law="kaplan_n", params={"N_c": 8.8e13, "alpha_N": 0.076}, ci={"N_c": (math.nan, math.nan)})
    back = _roundtrip(fit, tmp_path_factory)
    assert np.isnan(back.ci["N_c"][0]) and back.predict(N=1e9) == fit.predict(N=1e9)


@FAST
@given(data=st.data())
def test_allocation_fits_survive_the_round_trip(data, tmp_path_factory):
    params = {"a": data.draw(st.floats(0.2, 0.8)), "b": data.draw(st.floats(0.2, 0.8)),
              "k_N": data.draw(st.floats(1e-3, 10)), "k_D": data.draw(st.floats(1e-3, 10))}
    n = data.draw(st.integers(0, 20))
    samples = np.array([[params[k] * (1 + 0.01 * i) for k in ("a", "b", "k_N", "k_D")] for i in range(n)]) if n else None
    fit = AllocationFit(method="approach2", params=params, samples=samples, data_range={"C": (1e17, 1e19)})
    back = _roundtrip(fit, tmp_path_factory)
    C = np.logspace(17, 25, 9)
    for a, b in zip(back.predict(C), fit.predict(C)):
        np.testing.assert_array_equal(a, b)
    if n:
        for (alo, ahi), (blo, bhi) in zip(back.predict_interval(C), fit.predict_interval(C)):
            np.testing.assert_array_equal(alo, blo)
            np.testing.assert_array_equal(ahi, bhi)


def test_the_table_strategy_reaches_both_outcomes():
    """Guard against a strategy that only ever errors (or only ever fits): both must occur."""
    outcomes = set()

    @settings(FITS, max_examples=40, phases=NO_SHRINK)
    @given(df=tables())
    def probe(df):
        try:
            _quiet(fit_law, _quiet(load_points, df), "chinchilla", progress=False)
            outcomes.add("fit")
        except ToolkitError:
            outcomes.add("error")

    probe()
    assert outcomes == {"fit", "error"}

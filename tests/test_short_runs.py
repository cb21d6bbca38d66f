"""Runs too short to be on a law of N and D are set aside before fitting
(analysis.selection.policy.LawPolicy.min_tokens_per_param, docs/analysis.md).

Ground truth: a ladder drawn from a known Chinchilla law whose short runs sit above it, as
Gadre et al. 2024's 5-tokens-per-parameter runs do (warmup is a large share of their steps).
"""
import json

import numpy as np
import pandas as pd
import pytest

from analysis.data.points import set_aside_short, short_threshold
from analysis.laws import chinchilla
from analysis.selection.checked import fit_checked
from analysis.selection.policy import POLICY

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022, eq. 10
#: relative excess loss of a run at this many tokens per parameter over the law
EXCESS = {5: 0.06, 10: 0.015}


def ladder(seed=0, noise=0.002, excess=None):
    rng = np.random.default_rng(seed)
    rows = [(n, m * n) for n in np.geomspace(2e7, 1.2e9, 6) for m in (5, 10, 20, 40, 80, 160)]
    N, D = np.array(rows).T
    m = np.rint(D / N).astype(int)
    excess = EXCESS if excess is None else excess
    loss = chinchilla(N, D, **TRUTH) * (1 + np.array([excess.get(k, 0.0) for k in m]))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss * np.exp(rng.normal(0, noise, len(N)))})


def test_rows_under_the_threshold_are_set_aside():
    df = pd.DataFrame({"params": [1e6, 1e6, 1e6, 4e6, 4e6, 9e6],
                       "tokens": [5e6, 2e7, 4e7, 2e7, 6e7, 2.7e8],  # the 4e6 size: 5 and 15 tokens per parameter
                       "loss": [3.0, 2.8, 2.7, 2.9, 2.75, 2.5]})
    kept, aside = set_aside_short(df, 20)
    assert sorted(zip(kept["params"], kept["tokens"])) == [(1e6, 2e7), (1e6, 4e7), (9e6, 2.7e8)]
    assert sorted(zip(aside["params"], aside["tokens"])) == [(1e6, 5e6), (4e6, 2e7), (4e6, 6e7)]
    assert len(set_aside_short(df, 0)[0]) == 6
    assert len(set_aside_short(df.drop(columns="tokens"), 20)[0]) == 6


def test_the_largest_size_always_stays():
    # its longest run is 15 tokens per parameter: the threshold comes down to it
    df = pd.DataFrame({"params": [1e6, 1e6, 1e6, 4e6, 4e6],
                       "tokens": [5e6, 2e7, 4e7, 2e7, 6e7], "loss": [3.0, 2.8, 2.7, 2.9, 2.75]})
    assert short_threshold(df, 20) == pytest.approx(15)
    kept, aside = set_aside_short(df, 20)
    assert sorted(zip(kept["params"], kept["tokens"])) == [(1e6, 2e7), (1e6, 4e7), (4e6, 6e7)]
    assert sorted(zip(aside["params"], aside["tokens"])) == [(1e6, 5e6), (4e6, 2e7)]


def test_a_table_too_short_to_fit_without_its_short_runs_keeps_them_and_says_so():
    df = ladder()
    m = df["tokens"] / df["params"]
    # every size at 5 and 10 tokens per parameter, the largest at 40 as well: 20 keeps one run
    short = df[(m < 20) | ((df["params"] == df["params"].max()) & (m.round() == 40))]
    checked = fit_checked(short, "chinchilla", progress=False)
    assert checked.fit.n_points == len(short) == 13
    assert checked.short_runs["set_aside"] == 0
    assert "too few to determine chinchilla: every run is fitted" in checked.short_runs["note"]
    assert checked.short_runs["note"] in checked.header_lines()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_setting_short_runs_aside_recovers_the_law_where_runs_are_long(seed):
    # the short runs bend the data term (B, beta), which shows where a small model trains
    # long: the tokens-to-match regime; 20M at 640 tokens per parameter, 4x past the longest fitted
    df = ladder(seed)
    N, D = 2e7, 640 * 2e7
    truth = float(chinchilla(N, D, **TRUTH))
    default = fit_checked(df, "chinchilla", progress=False)
    every = fit_checked(df, "chinchilla", min_tpp=0, progress=False)
    err_default = float(default.fit.predict(N=N, D=D)) / truth - 1
    err_every = float(every.fit.predict(N=N, D=D)) / truth - 1
    assert POLICY.min_tokens_per_param.value == 20
    assert default.short_runs["set_aside"] == 12 and every.short_runs["set_aside"] == 0
    assert abs(err_default) < 0.005, err_default
    assert err_every < -0.01, err_every  # fitted with them, the law says long runs do better than they do
    assert default.fit.params["beta"] == pytest.approx(TRUTH["beta"], abs=0.02)


def test_what_was_set_aside_is_said_above_the_numbers_and_in_json(tmp_path, capsys):
    from scaling.app.cli import main

    table = tmp_path / "ladder.csv"
    ladder().to_csv(table, index=False)
    assert main(["fit", str(table), "--law", "chinchilla"]) == 0
    out = capsys.readouterr().out
    head = out.split("[[chinchilla]]")[0]
    assert "12 of 36 points trained on fewer than 20 tokens per parameter (5 to 10) are set aside" in head
    assert main(["fit", str(table), "--law", "chinchilla", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["short_runs"]["set_aside"] == 12 and d["short_runs"]["min_tokens_per_param"] == 20
    assert d["n_points"] == 24
    assert main(["fit", str(table), "--law", "chinchilla", "--min-tpp", "0", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["short_runs"]["set_aside"] == 0 and d["n_points"] == 36


@pytest.mark.parametrize("excess,where", [(0.04, "above"), (-0.03, "below")])
def test_the_note_says_where_this_tables_short_runs_lie(excess, where):
    # ground truth: every run under 20 tokens per parameter sits `excess` off the known law; the
    # note measures it against the law fitted to the rest rather than asserting a direction
    df = ladder(excess={5: excess, 10: excess})
    checked = fit_checked(df, "chinchilla", progress=False)
    offset = checked.short_runs["median_offset"]
    assert offset == pytest.approx(excess, abs=0.006), offset
    assert f"these lie a median {100 * abs(offset):.2g}% {where} the law fitted to the rest" in checked.short_runs["note"]
    assert checked.short_runs["note"] in checked.header_lines()


def test_gadre_short_runs_are_measured_above_the_law():
    # Gadre et al. 2024's 5 and 10 tokens-per-parameter runs: the public case the threshold rests on
    from analysis.data import datasets

    checked = fit_checked(datasets.load("gadre2024:c4/small"), "gadre2024", progress=False)
    assert checked.short_runs["set_aside"] == 8
    assert 0.015 < checked.short_runs["median_offset"] < 0.05


def test_a_question_shorter_than_every_fitted_run_says_so(tmp_path, capsys):
    from scaling.app.cli import main

    df = ladder()
    checked = fit_checked(df, "chinchilla", progress=False)
    offset = checked.short_runs["median_offset"]
    short = checked.prediction_warnings(2e9, 10 * 2e9)
    assert any("D/N=10 is shorter than the 20 tokens per parameter of every run the law was fitted to" in w
               and f"lie a median {100 * offset:.2g}% above the law" in w for w in short), short
    assert not any("shorter than" in w for w in checked.prediction_warnings(2e9, 20 * 2e9))
    table = tmp_path / "ladder.csv"
    df.to_csv(table, index=False)
    assert main(["fit", str(table), "--law", "chinchilla", "--predict", "2e9:2e10,2e9:8e10", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)["predictions"]
    assert [any("shorter than the 20 tokens" in w for w in p.get("warnings", [])) for p in preds] == [True, False]
    # with every run fitted nothing was set aside, so there is nothing to say
    assert not any("shorter than" in w for w in fit_checked(df, "chinchilla", min_tpp=0, progress=False)
                   .prediction_warnings(2e9, 10 * 2e9))

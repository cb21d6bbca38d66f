"""`scaling fit` and `scaling curve`: output contracts and one-line errors."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis import laws
from analysis.fitting.curves import annealing_areas, schedule_from_rows, tissue_annealing
from analysis.data.published import besiroglu2024
from scaling.app.cli import main

TRUE = besiroglu2024().params


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = []
    for C in np.geomspace(1e18, 1e21, 5):
        n_opt, _ = laws.chinchilla_optimal(C, **TRUE)
        for n in n_opt * np.geomspace(1 / 5, 5, 7):
            rows.append((n, C / (6 * n)))
    N, D = np.array(rows).T
    loss = laws.chinchilla(N, D, **TRUE) * np.exp(rng.normal(0, 0.005, len(N)))
    path = tmp_path_factory.mktemp("cli") / "points.csv"
    # the replication's spellings: the CLI must recognise them
    pd.DataFrame({"Model Size": N, "Training FLOP": 6 * N * D, "loss": loss}).to_csv(path, index=False)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_json_contract_with_predictions(table, capsys):
    code, out, _ = run(capsys, "fit", table, "--law", "chinchilla", "--json", "--predict",
                          "7e9:1.4e12,70e9:1.4e12,1e12:3e13", "--quiet")
    assert code == 0
    d = json.loads(out)
    assert d["law"]["name"] == "chinchilla" and set(d["law"]["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert d["n_points"] == 35 and all(len(v) == 2 for v in d["ci"].values())
    assert [(p["params"], p["tokens"]) for p in d["predictions"]] == [(7e9, 1.4e12), (70e9, 1.4e12), (1e12, 3e13)]
    truth = laws.chinchilla(70e9, 1.4e12, **TRUE)
    assert d["predictions"][1]["loss"] == pytest.approx(truth, rel=0.02)
    assert "warnings" not in d["predictions"][0]
    assert "outside the fitted range" in d["predictions"][2]["warnings"][0]  # 1T params: 70x the largest


def test_fit_bootstrap_gives_prediction_intervals_and_saves(table, capsys, tmp_path):
    code, out, _ = run(capsys, "fit", table, "--law", "gadre2024", "--bootstrap", "12", "--jobs", "1", "--json",
                       "--predict", "1e9:2e10", "--save", tmp_path / "fit.json", "--quiet")
    d = json.loads(out)
    assert code == 0 and d["law"]["name"] == "gadre2024" and d["law"]["bootstrap_draws"] == 12
    lo, hi = d["predictions"][0]["interval"]
    assert lo <= d["predictions"][0]["loss"] <= hi
    saved = json.loads((tmp_path / "fit.json").read_text())
    assert saved["kind"] == "LawFit" and len(saved["samples"]) == 12


def test_fit_report_kaplan_and_allocation(table, capsys):
    code, out, _ = run(capsys, "fit", table, "--law", "kaplan", "--quiet")
    assert code == 0 and "[[kaplan_nd]]" in out and "[[kaplan_c]]" in out
    code, out, _ = run(capsys, "fit", table, "--law", "approach2", "--compute", "1e22", "--json")
    d = json.loads(out)
    assert code == 0 and d["law"]["name"] == "approach2" and set(d["law"]["params"]) == {"a", "b", "k_N", "k_D"}
    assert d["allocation"][0]["flops"] == 1e22 and d["allocation"][0]["tokens_per_param"] > 1
    code, out, _ = run(capsys, "fit", table, "--law", "chinchilla", "--compute", "1e21", "--quiet")
    assert "[[Compute-optimal allocation]]" in out and "a (derived)" in out


@pytest.mark.parametrize("mutate,expect", [
    (lambda df: df.assign(loss=df["loss"].where(df.index != 3)), "loss: 1 row(s) with a missing or non-finite loss"),
    (lambda df: df.assign(**{"Training FLOP": -df["Training FLOP"]}), "flops: 35 row(s) with a non-positive flops"),
    (lambda df: df.assign(**{"Model Size": 1e8}), "params: only one distinct model size"),
])
def test_bad_tables_fail_with_one_line(table, capsys, tmp_path, mutate, expect):
    bad = tmp_path / "bad.csv"
    mutate(pd.read_csv(table)).to_csv(bad, index=False)
    code, out, err = run(capsys, "fit", bad, "--quiet")
    assert code == 2 and out == ""
    assert err.startswith("scaling fit: error: ") and expect in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_predict_needs_pairs(table, capsys):
    code, _, err = run(capsys, "fit", table, "--predict", "7e9", "--quiet")
    assert code == 2 and "--predict: cannot read '7e9'" in err
    code, _, err = run(capsys, "fit", table, "--law", "approach2", "--predict", "7e9:1e12")
    assert code == 2 and "use --compute" in err


def test_curve_fit_and_predict(tmp_path, capsys):
    T, W, peak = 1500, 100, 3e-3
    t = np.arange(1, T + 1)
    shapes = {
        "const": np.where(t <= W, peak * t / W, peak),
        "cosine": np.where(t <= W, peak * t / W, peak * (0.1 + 0.45 * (1 + np.cos(np.pi * (t - W) / (T - W))))),
        "wsd": np.where(t <= W, peak * t / W, np.where(t < 1200, peak, peak * (1 - 0.9 * (t - 1200) / 300))),
    }
    for name, lr in shapes.items():
        s1, s2 = annealing_areas(schedule_from_rows(t, lr))
        loss = tissue_annealing(s1, s2, 2.5, 1.2, 0.45, 0.6)
        rows = np.arange(W, T + 1, 25)
        pd.DataFrame({"step": rows, "lr": lr[rows - 1], "loss": loss[rows - 1]}).to_csv(tmp_path / f"{name}.csv",
                                                                                       index=False)
    code, out, _ = run(capsys, "curve", "fit", tmp_path / "const.csv", tmp_path / "cosine.csv", "--law", "annealing",
                       "-o", tmp_path / "fit.json")
    assert code == 0 and "[[annealing]]" in out and "dropped" in out
    code, out, _ = run(capsys, "curve", "predict", tmp_path / "fit.json", tmp_path / "wsd.csv", "--json")
    d = json.loads(out)
    assert code == 0 and len(d["predictions"]) == len(pd.read_csv(tmp_path / "wsd.csv"))
    assert d["mean_rel_error"] < 1e-3 and d["max_rel_error"] < 3e-3
    # a schedule without losses: predictions only
    pd.read_csv(tmp_path / "wsd.csv")[["step", "lr"]].to_csv(tmp_path / "sched.csv", index=False)
    code, out, _ = run(capsys, "curve", "predict", tmp_path / "fit.json", tmp_path / "sched.csv")
    assert code == 0 and "loss_pred" in out and "relative error" not in out
    code, _, err = run(capsys, "curve", "predict", tmp_path / "sched.csv", tmp_path / "sched.csv")
    assert code == 2 and "not valid JSON" in err or "not a loss-curve fit" in err


def test_help_shows_runnable_examples(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "scaling fit runs/sweep --bootstrap 1000" in out
    with pytest.raises(SystemExit):
        main(["curve", "fit", "--help"])
    assert "--warmup-steps" in capsys.readouterr().out

"""The extrapolate / plot / report commands: JSON schema, images, and one-line errors with exit 2."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from analysis.fitting.result import LawFit
from scaling.app.cli import main

P = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}
MODEL_KEYS = {"params", "tokens", "flops", "loss", "loss_at_target_compute", "tokens_to_match", "flops_to_match",
              "compute_multiple", "breakeven_inference_tokens", "intervals"}


@pytest.fixture
def points_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for n in (1e7, 3e7, 1e8, 3e8):
        for d in (2e8, 6e8, 2e9, 6e9):
            loss = float(LawFit("chinchilla", P).predict(n, d)) * (1 + 0.003 * rng.normal())
            rows.append({"params": n, "tokens": d, "loss": loss, "run": f"{n:g}-{d:g}"})
    path = tmp_path / "points.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def saved_fit(tmp_path):
    rng = np.random.default_rng(1)
    base = np.array([P[k] for k in ("E", "A", "B", "alpha", "beta")])
    fit = LawFit("chinchilla", P, samples=base * rng.normal(1, 0.005, size=(80, 5)), name="synthetic",
                 data_range={"N": (1e7, 3e8), "D": (2e8, 6e9)})
    path = tmp_path / "fit.json"
    fit.save(path)
    return path


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_published_llama_json(capsys):
    d = _json(capsys, ["extrapolate", "--published", "llama", "--json"])
    assert d["target"]["name"] == "LLaMA-65B" and d["target"]["gpu_hours"] == 1_022_362
    cost = {r["model"]: r for r in d["cost"]}
    assert round(cost["LLaMA-7B"]["gpu_hour_multiple"], 1) == 12.4
    assert round(cost["LLaMA-13B"]["gpu_hour_multiple"], 2) == 7.56
    assert [law["law"]["name"] for law in d["laws"]] == ["hoffmann2022", "besiroglu2024"]
    for law in d["laws"]:
        assert "not LLaMA's losses" in law["note"] and law["law"]["source"]
        assert set(law["target"]) >= {"params", "tokens", "flops", "loss"}
        assert all(MODEL_KEYS <= set(m) for m in law["models"])
    besi7 = d["laws"][1]["models"][0]
    # "never" is written as such (docs/json.md), never as the null of "not applicable"
    assert besi7["tokens_to_match"] == "never" and besi7["reachable"] is False
    assert besi7["flops_to_match"] == "never" and besi7["breakeven_inference_tokens"] == "never"
    assert besi7["loss_at_target_compute"] > 0  # the equal-compute answer exists


def test_published_llama_table_labels_sources(capsys):
    assert main(["extrapolate", "--published", "llama"]) == 0
    out = capsys.readouterr().out
    assert "12.4x" in out and "7.56x" in out and "1.93x" in out and "13.6x" in out
    assert "Touvron et al. 2023" in out and "Hoffmann et al. 2022" in out and "Besiroglu et al. 2024" in out


def test_models_and_target_json_follows_the_schema(capsys):
    d = _json(capsys, ["extrapolate", "--law", "hoffmann2022", "--models", "7e9,13e9", "--target", "65e9:1.4e12",
                       "--json"])
    assert {"params", "tokens", "flops", "loss"} <= set(d["target"])
    assert d["target"]["flops"] == pytest.approx(6 * 65e9 * 1.4e12)
    assert [m["params"] for m in d["models"]] == [7e9, 13e9]
    for m in d["models"]:
        assert MODEL_KEYS <= set(m)
        assert m["flops_to_match"] == pytest.approx(6 * m["params"] * m["tokens_to_match"])
        assert m["compute_multiple"] == pytest.approx(m["flops_to_match"] / d["target"]["flops"])
    assert "6ND" in d["flop_convention"]


def test_saved_fit_with_draws_gives_intervals_and_csv(capsys, saved_fit):
    d = _json(capsys, ["extrapolate", str(saved_fit), "--models", "3e7:6e9,1e8:6e9,3e8:6e9", "--json"])
    assert d["law"]["bootstrap_draws"] == 80 and d["level"] == 0.9
    m = d["models"][-1]
    lo, hi = m["intervals"]["tokens_to_match"]
    assert lo <= m["tokens_to_match"] <= hi
    assert main(["extrapolate", str(saved_fit), "--models", "3e7:6e9,1e8:6e9,3e8:6e9", "--csv"]) == 0
    from io import StringIO

    frame = pd.read_csv(StringIO(capsys.readouterr().out))
    assert list(frame["params"]) == [3e7, 1e8] and "tokens_to_match_low" in frame.columns


def test_fit_from_a_table_end_to_end(capsys, points_csv):
    d = _json(capsys, ["extrapolate", str(points_csv), "--json", "--no-curves"])
    assert d["law"]["source"] == "fit" and d["target"]["params"] == 3e8
    assert d["target"]["loss_measured"] is not None
    assert [m["params"] for m in d["models"]] == [1e7, 3e7, 1e8]
    assert all(m["loss"] is not None for m in d["models"])


def test_plot_command_writes_images_with_the_expected_curves(tmp_path, points_csv, saved_fit):
    out = tmp_path / "figs" / "study.svg"
    assert main(["plot", str(points_csv), "--law", str(saved_fit), "--kind", "all", "-o", str(out)]) == 0
    svg = (tmp_path / "figs" / "study-curves.svg").read_text()
    assert svg.count('id="fit:') == 4 and svg.count('id="measured:') == 4 and svg.count('id="band:') == 4
    assert svg.count('id="target"') == 1 and svg.count('id="cross:') >= 1
    iso = (tmp_path / "figs" / "study-isoflop.svg").read_text()
    assert iso.count('id="isoflop-fit:') >= 2
    res = (tmp_path / "figs" / "study-residuals.svg").read_text()
    assert res.count('id="residual:') == 4
    png = tmp_path / "one.png"
    assert main(["plot", str(points_csv), "--law", str(saved_fit), "-o", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000


@pytest.mark.parametrize("argv, field", [
    (["extrapolate"], "path"),
    (["extrapolate", "--models", "7e9"], "path"),
    (["extrapolate", "--law", "hoffmann2022", "--models", "7e9,abc", "--target", "65e9:1.4e12"], "models"),
    (["extrapolate", "--law", "hoffmann2022", "--models", "7e9", "--target", "banana"], "target"),
    (["extrapolate", "--law", "nosuchlaw", "--models", "7e9", "--target", "65e9:1.4e12"], "law"),
    (["extrapolate", "--published", "gpt"], "published"),
    (["extrapolate", "--published", "llama", "--bootstrap", "10"], "--bootstrap"),
    (["extrapolate", "no/such/dir"], "no/such/dir"),
    (["plot", "no/such.csv", "-o", "x.png"], "no/such.csv"),
    (["plot", "points.csv", "-o", "x.jpeg"], "--output"),
    (["report", "no/such.csv", "-o", "rep"], "no/such.csv"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, points_csv, argv, field):
    monkeypatch.chdir(points_csv.parent)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err and "Traceback" not in err


def test_usage_errors_exit_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as e:  # argparse's exit, as `python -m scaling` would exit
        main(["extrapolate", "--published", "llama", "--json", "--csv"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["extrapolate", "plot", "report"])
def test_help_has_a_runnable_example(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"scaling {command}" in out.split("example:")[1]


def test_table_of_curves_gives_own_curve_answers_in_json(tmp_path, capsys, saved_fit):
    # One run per size, its loss logged along the way (columns run + step): a curve each.
    rows = []
    for n in (1e7, 3e7, 1e8):
        for step in range(1, 11):
            t = step * 2e8
            rows.append({"run": f"r{n:g}", "step": step, "params": n, "tokens": t,
                         "loss": float(LawFit("chinchilla", P).predict(n, t))})
    path = tmp_path / "curves.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    d = _json(capsys, ["extrapolate", str(path), "--law", str(saved_fit), "--json"])
    assert d["target"]["params"] == 1e8 and d["target"]["tokens"] == 2e9
    for m in d["models"]:
        c = m["curve"]
        assert c["law"]["form"] == "saturating_power" and c["n_points"] >= 4
        # Curves drawn from the law itself: the own-curve answer agrees with the joint law.
        assert c["loss_at_target_compute"] == pytest.approx(m["loss_at_target_compute"], rel=1e-3)


def test_own_curve_answers_get_intervals_with_bootstrap(tmp_path, capsys, saved_fit):
    # Curves with 0.3% noise on each loss: with --bootstrap the own-curve column carries an
    # interval around its answer, in the table and in the JSON, like the joint law's columns.
    rng = np.random.default_rng(0)
    rows = []
    for n in (1e7, 3e7, 1e8):
        for step in range(1, 11):
            t = step * 2e8
            loss = float(LawFit("chinchilla", P).predict(n, t)) * float(np.exp(0.003 * rng.standard_normal()))
            rows.append({"run": f"r{n:g}", "step": step, "params": n, "tokens": t, "loss": loss})
    path = tmp_path / "curves.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    d = _json(capsys, ["extrapolate", str(path), "--law", str(saved_fit), "--bootstrap", "40", "--json"])
    for m in d["models"]:
        c = m["curve"]
        lo, hi = c["intervals"]["tokens_to_match"]   # hi "never": beyond reach in the top draws
        assert lo < c["tokens_to_match"] and (hi == "never" or c["tokens_to_match"] < hi)
    assert main(["extrapolate", str(path), "--law", str(saved_fit), "--bootstrap", "40"]) == 0
    table = capsys.readouterr().out
    # the table comes in blocks of columns, each naming the model; the own curve's is the last
    row = [line for line in table.splitlines() if line.strip().startswith("10M ")][-1]
    assert re.search(r"\] \(\d+% of draws: never\)$|\]$", row.rstrip()), row


def test_a_saved_fit_carries_what_its_intervals_need(tmp_path, capsys):
    # The earlier rule (--sizes auto) ties chinchilla to gadre2024 on this table, and the
    # auto rule sizes intervals by an error model: `extrapolate FIT.json` must give the
    # intervals `extrapolate TABLE` gives, not the narrower ones of the law's bootstrap alone.
    from analysis.data.synthetic import synthetic_table

    table = tmp_path / "syn.csv"
    synthetic_table().to_csv(table, index=False)
    fit = tmp_path / "fit.json"
    assert main(["fit", str(table), "--sizes", "auto", "--bootstrap", "12", "--jobs", "1", "--quiet",
                 "-o", str(fit)]) == 0
    capsys.readouterr()
    saved = json.loads(fit.read_text())
    assert list(saved["intervals_from"]["tied_laws"]) == ["chinchilla"]
    ask = ["--models", "3e9,1e10", "--target", "3.4e10:5e11", "--json", "--quiet"]
    from_file = _json(capsys, ["extrapolate", str(fit), *ask])
    from_table = _json(capsys, ["extrapolate", str(table), "--sizes", "auto", "--bootstrap", "12", "--jobs", "1",
                                "--no-curves", *ask])
    assert from_file["tied_laws"]["laws"] == ["chinchilla"]
    for a, b in zip(from_file["models"], from_table["models"]):
        assert a["intervals"] == b["intervals"] and a["tokens_to_match"] == b["tokens_to_match"]
    # the tied law is used: moved (its floor 20% lower), it widens the saved fit's intervals;
    # without the section they are the bootstrap's alone
    moved = json.loads(fit.read_text())
    moved["intervals_from"]["tied_laws"]["chinchilla"]["params"]["E"] *= 0.8
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    bare = {k: v for k, v in saved.items() if k != "intervals_from"}
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    wide = _json(capsys, ["extrapolate", str(tmp_path / "moved.json"), *ask])["models"][1]["intervals"]
    narrow = _json(capsys, ["extrapolate", str(tmp_path / "bare.json"), *ask])["models"][1]["intervals"]
    assert wide["loss_at_target_compute"][0] < narrow["loss_at_target_compute"][0]
    assert wide["tokens_to_match"][0] <= narrow["tokens_to_match"][0]


def test_several_targets_fit_the_table_once_and_answer_as_one_target_would(points_csv, monkeypatch):
    import analysis.extrapolation.study as S

    calls = []
    real = S.fit_checked
    monkeypatch.setattr(S, "fit_checked", lambda *a, **k: calls.append(1) or real(*a, **k))
    both = S.run_studies(points_csv, targets=["largest", "3e8:2e9"], law="chinchilla", curves=False)
    assert len(calls) == 1 and len(both) == 2
    alone = S.run_study(points_csv, target="3e8:2e9", law="chinchilla", curves=False)
    assert [m.tokens_to_match for m in both[1].result.models] == [m.tokens_to_match for m in alone.result.models]
    assert both[1].result.target.tokens == 2e9 and both[0].result.target.tokens == 6e9
    names = [c.name for c in both[1].checks]
    assert names.count(S.MEASURED_AGREEMENT) == 1  # its own target's, not the first one's as well


def test_each_tokens_to_match_answer_says_how_far_it_extrapolates(capsys, points_csv):
    # the range fitted at each size is its runs' D/N from the policy's 20 up (shorter runs are
    # set aside); the answer's D*/N is measured against it
    d = _json(capsys, ["extrapolate", str(points_csv), "--json"])
    df = pd.read_csv(points_csv)
    top = df["params"].max()
    answered = [m for m in d["models"] if m["tokens_to_match"] != "never"]
    assert answered
    for m in answered:
        dist = m["distance"]
        assert dist["tokens_per_param"] == pytest.approx(m["tokens_to_match"] / m["params"], rel=1e-12)
        assert dist["params_ratio"] == pytest.approx(m["params"] / top, rel=1e-12)
        own = df[df["params"] == m["params"]]
        own = own[own["tokens"] / own["params"] >= 20]
        near = dist["fitted_tokens_per_param_near_N"]
        assert near["params"] == m["params"]
        assert near["range"] == pytest.approx([(own["tokens"] / own["params"]).min(), (own["tokens"] / own["params"]).max()])
        # the error model's z at (N, D*) is the one its interval was sized by
        assert dist["z"] == pytest.approx(np.hypot(dist["z_size"], dist["z_tokens"]), rel=1e-9)
    assert main(["extrapolate", str(points_csv)]) == 0
    text = capsys.readouterr().out
    assert "Answer distance: each model's tokens to match, in tokens per parameter against the most fitted near" in text
    fitted = df[df["tokens"] / df["params"] >= 20]
    for m in answered:
        # by hand: the most tokens per parameter fitted at the sizes within an e-fold of the
        # fitted size nearest the model (its own here), the answer's D*/N over it
        ln_n = np.log(fitted["params"])
        window = fitted[np.abs(ln_n - np.log(m["params"])) <= 1.0 + 1e-9]
        most = float((window["tokens"] / window["params"]).max())
        tpp = m["distance"]["tokens_per_param"]
        assert m["distance"]["tokens_distance"] == pytest.approx(tpp / most, rel=1e-9)
        assert f"{tpp:.3g} per parameter, {tpp / most:.2g}x the {most:.3g} fitted near it" in text


def test_under_a_data_limit_the_epochs_interval_is_the_tokens_interval_over_u(capsys, points_csv):
    # without a bootstrap the interval is the error model's alone; epochs to match are tokens
    # to match over the U unique tokens, so their interval must be there too, and be the same
    # interval divided by U (it used to appear only when a bootstrap had made one)
    U = 3e9
    d = _json(capsys, ["extrapolate", str(points_csv), "--unique-tokens", str(U), "--json"])
    answered = [m for m in d["models"] if "tokens_to_match" in m["intervals"]]
    assert answered
    for m in answered:
        lo, hi = m["intervals"]["tokens_to_match"]
        assert m["intervals"]["epochs_to_match"] == pytest.approx([lo / U, hi / U], rel=1e-12)
        if m["tokens_to_match"] != "never":
            assert m["epochs_to_match"] == pytest.approx(m["tokens_to_match"] / U, rel=1e-12)
    # and the table shows it beside the point answer
    assert main(["extrapolate", str(points_csv), "--unique-tokens", str(U)]) == 0
    text = capsys.readouterr().out
    for m in answered:
        if m["tokens_to_match"] != "never":
            lo, hi = m["intervals"]["epochs_to_match"]
            assert f"{m['epochs_to_match']:.3g} [{lo:.3g}, {hi:.3g}]" in text

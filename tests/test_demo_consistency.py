"""The demo and the other commands agree: one sweep directory by default, one report,
preset names for models. On the tiny demo study of :mod:`demo_testing`."""
from __future__ import annotations

from pathlib import Path

import pytest

from demo_testing import TINY_OVERRIDES, TINY_RUNS
from scaling.app.cli import main


def test_sweep_dry_run_looks_where_the_demo_writes(tmp_path, monkeypatch):
    from scaling.defaults import DEMO_OUT, DEMO_SWEEP_SUBDIR
    from sweeps.launch import sweep_root

    monkeypatch.chdir(tmp_path)
    assert sweep_root("demo") == tmp_path / DEMO_OUT / DEMO_SWEEP_SUBDIR
    # `scaling demo` with no --out writes its sweep there too.
    from scaling.app.cli import build_parser

    args = build_parser(only="demo").parse_args(["demo"])
    assert Path(args.out) / DEMO_SWEEP_SUBDIR == Path(DEMO_OUT) / DEMO_SWEEP_SUBDIR


def test_sweep_dry_run_after_the_demo_has_nothing_to_train(demo, monkeypatch, capsys):
    # The demo's own default layout: DIR/demo_out/runs, and the dry run from DIR.
    assert demo["out"].name == "demo_out"
    monkeypatch.chdir(demo["out"].parent)
    capsys.readouterr()
    assert main(["sweep", "demo", "--dry-run", *TINY_OVERRIDES, *TINY_RUNS]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("3 runs, 0 to train"), last
    assert last.endswith(f"sweep directory {demo['result'].sweep_dir.resolve()}"), last


def _json(capsys, argv) -> dict:
    import json

    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_models_are_named_by_their_preset_and_numbers_still_work(demo, capsys):
    sweep = demo["result"].sweep_dir
    by_name = _json(capsys, ["extrapolate", sweep, "--law", "chinchilla", "--no-curves", "--json",
                             "--models", "nano,micro,tiny"])
    assert [m["name"] for m in by_name["models"]] == ["nano", "micro"] and by_name["target"]["name"] == "tiny"
    # The same question with the sizes and budgets as numbers, read from the run records.
    from analysis.common import records as R

    pts = R.points_table(sweep)
    finals = pts[pts["point"] == "final"].set_index("model")
    spec = ",".join(f"{finals.loc[m, 'params']:.17g}:{finals.loc[m, 'tokens']:.17g}" for m in ("nano", "micro", "tiny"))
    by_number = _json(capsys, ["extrapolate", sweep, "--law", "chinchilla", "--no-curves", "--json", "--models", spec])
    assert [m["params"] for m in by_number["models"]] == [m["params"] for m in by_name["models"]]
    for a, b in zip(by_name["models"], by_number["models"]):
        assert a["loss_at_target_compute"] == pytest.approx(b["loss_at_target_compute"], rel=1e-10)
        assert a["tokens_to_match"] == pytest.approx(b["tokens_to_match"], rel=1e-10)


def test_an_unknown_model_name_is_one_line_naming_the_known_ones(demo, capsys):
    capsys.readouterr()
    assert main(["extrapolate", str(demo["result"].sweep_dir), "--models", "nano,huge"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("scaling extrapolate: error: models: "), err
    assert "'huge'" in err and "nano, micro, tiny" in err, err


def test_tables_and_figures_label_models_with_name_and_size(demo, capsys):
    from analysis.reporting.plots import plot_curves, plot_runs
    from analysis.common.text import si

    study = demo["result"].study
    sizes = {m: si(float(g["params"].iloc[0])) for m, g in study.points.groupby("model")}
    assert set(sizes) == {"nano", "micro", "tiny"}
    labels = [f"{m} ({s})" for m, s in sizes.items()]
    # The extrapolation table: one model column, no separate params column repeating the size.
    lines = study.result.table().splitlines()
    head = next(ln for ln in lines if ln.startswith("model "))
    assert "params" not in head.split()
    assert any(ln.startswith("nano (" + sizes["nano"] + ")") for ln in lines)
    report = (demo["result"].report_dir / "report.md").read_text()
    assert all(f"| {lab} |" in report for lab in labels), report
    for fig in (plot_curves(study.points, study.fit, study.result, study.curves), plot_runs(study.points, study.curves)):
        legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        assert all(any(t.startswith(lab) for t in legend) for lab in labels), legend
        assert not any(t.startswith("N=") for t in legend), legend


def test_scaling_report_writes_what_the_demo_report_holds(demo, capsys, tmp_path):
    res = demo["result"]
    capsys.readouterr()
    assert main(["report", str(res.sweep_dir), "-o", str(tmp_path / "rep"), "--law", "auto",
                 "--bootstrap", "20", "--seed", "0", "--jobs", "2"]) == 0
    mine = {p.name for p in (tmp_path / "rep").iterdir()}
    assert mine == {p.name for p in res.report_dir.iterdir()}
    assert {"frontier.png", "own_curves.png", "fit.json", "extrapolation.csv"} <= mine
    md = (tmp_path / "rep" / "report.md").read_text()
    for heading in ("## Data", "## Sanity checks", "## Fit", "## Compute-matched extrapolation", "## Figures"):
        assert heading in md
    # The same data, law, seed and refits as the demo: the same fit, to the last digit.
    from analysis.fitting.result import LawFit

    assert LawFit.load(tmp_path / "rep" / "fit.json").params == pytest.approx(res.study.fit.params, rel=1e-10)
    assert (tmp_path / "rep" / "extrapolation.csv").read_text() == (res.report_dir / "extrapolation.csv").read_text()


def test_plot_offers_every_figure_of_the_report(demo, capsys, tmp_path):
    from analysis.reporting.report import REPORT_FILES, REPORT_KINDS
    from scaling.app.cli.plot import REPORT_KINDS as CLI_KINDS

    assert CLI_KINDS == REPORT_KINDS == tuple(n[:-4] for n in REPORT_FILES if n.endswith(".png"))
    res = demo["result"]
    capsys.readouterr()
    assert main(["plot", str(res.sweep_dir), "--law", "chinchilla", "--kind", "all",
                 "-o", str(tmp_path / "figs" / "curves.png")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(res.written[n].name for n in res.written
                                                                          if n.endswith(".png"))
    assert main(["plot", str(res.sweep_dir), "--law", "chinchilla", "--kind", "own_curves",
                 "-o", str(tmp_path / "own.png")]) == 0
    assert (tmp_path / "own.png").read_bytes().startswith(b"\x89PNG")


def test_report_warnings_list_every_check_that_did_not_pass(demo):
    res = demo["result"]
    md = res.report.read_text()
    warnings = md.split("## Warnings", 1)[1]
    bad = [c for c in res.checks if c.status != "ok"]
    for c in bad:
        assert f"- sanity check *{c.name}*: {c.status}, {c.detail}" in warnings
    # and nothing the fit warned about is missing from the one list
    for w in res.study.fit.warnings:
        assert w in warnings
    if not bad and not res.study.fit.warnings and not res.study.result.warnings:
        assert "None." in warnings


def test_each_flops_column_says_its_convention(demo, capsys):
    res = demo["result"]
    capsys.readouterr()
    assert main(["runs", str(res.sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert "FLOPs (detailed)" in out.splitlines()[0] and "6ND is flops_6n" in out
    md = res.report.read_text()
    assert "| FLOPs (6ND) |" in md and "FLOPs counted as 6ND" in md


def test_demo_json_is_the_only_thing_on_stdout(demo, capsys):
    from demo_testing import TINY_GRID

    res = demo["result"]
    grid = ",".join(f"{m}={t}" for m, t in TINY_GRID)
    capsys.readouterr()
    assert main(["demo", "--out", str(demo["out"]), "--grid", grid, "--bootstrap", "20", "--jobs", "2", "--json",
                 *TINY_OVERRIDES]) == 0
    got = capsys.readouterr()
    import json

    d = json.loads(got.out)
    from cli_testing import assert_json_schema

    assert_json_schema(d, "demo")
    assert "all 3 runs finished already" in got.err and "Report:" in got.err
    assert sorted(Path(p).name for p in d["written"]) == sorted(res.written)
    assert all(Path(p).is_file() for p in d["written"])
    assert sorted(d["reused"]) == sorted(res.trained) and d["trained"] == [] and d["failed"] == []
    assert d["sweep_dir"] == str(res.sweep_dir) and d["law"]["form"] == res.study.fit.law
    assert d["law"]["params"] == pytest.approx(res.study.fit.params, rel=1e-12)


def _run_of(demo, model: str) -> Path:
    return next(p for p in demo["result"].sweep_dir.iterdir() if p.name.startswith(f"model={model},"))


def test_curve_fit_works_by_default_on_a_demo_run(demo, capsys, tmp_path):
    nano = _run_of(demo, "nano")
    capsys.readouterr()
    assert main(["curve", "fit", str(nano), "-o", str(tmp_path / "fit.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[[annealing]]")  # one curve: the 4-parameter law
    assert "note: law: annealing (--law auto" in out
    assert "note: loss: train_loss" in out  # a few val_loss rows cannot pin 4 parameters
    assert "at its upper bound" not in out and "at its lower bound" not in out, out
    from analysis.fitting.curves import CurveFit

    fit = CurveFit.load(tmp_path / "fit.json")
    assert fit.meta["models"][nano.name]["name"] == "nano"


def test_curve_predict_warns_when_the_fit_is_of_another_model(demo, capsys, tmp_path):
    nano, micro = _run_of(demo, "nano"), _run_of(demo, "micro")
    assert main(["curve", "fit", str(nano), "-o", str(tmp_path / "fit.json")]) == 0
    capsys.readouterr()
    assert main(["curve", "predict", str(tmp_path / "fit.json"), str(micro)]) == 0
    warnings = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("WARNING:")]
    assert len(warnings) == 1 and "this fit is of nano (" in warnings[0] and "a run of micro (" in warnings[0]
    assert main(["curve", "predict", str(tmp_path / "fit.json"), str(nano)]) == 0
    assert "WARNING: this fit is of" not in capsys.readouterr().out


def test_curve_predict_given_a_curve_for_the_fit_says_how_to_fit_first(demo, capsys, tmp_path):
    curve = tmp_path / "good.csv"
    curve.write_text("step,lr,loss\n" + "".join(f"{s},0.001,{3 - s / 1000:.4f}\n" for s in range(10, 400, 10)))
    capsys.readouterr()
    assert main(["curve", "predict", str(curve), str(curve)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"run `scaling curve fit {curve} -o fit.json`, then `scaling curve predict fit.json {curve}`" in err

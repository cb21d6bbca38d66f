"""`scaling demo` end to end on a tiny version of the demo experiment: it trains, fits,
prints the extrapolation table and sanity checks, writes the report and figures, names
them in its last lines, and a second run reuses every finished run without training."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.common import records as R
from analysis.fitting.result import LawFit
from demo_testing import TINY_GRID, TINY_OVERRIDES, TINY_RUNS
from scaling.app.cli import main


def _run_files(sweep_dir: Path) -> dict:
    """mtime of every file in every run directory: a rerun that trains must touch some."""
    return {str(p.relative_to(sweep_dir)): p.stat().st_mtime_ns
            for d in R.find_run_dirs(sweep_dir) for p in sorted(d.rglob("*")) if p.is_file()}


def test_first_run_trains_fits_and_reports(demo):
    res, lines = demo["result"], demo["lines"]
    assert len(res.trained) == 3 and not res.reused and not res.failed
    # The demo sweep is the experiment's own multirun: what `python -m sweeps -m
    # experiment=demo` with the same overrides plans is exactly what was trained.
    from sweeps.launch import plan

    planned = plan("demo", TINY_OVERRIDES + TINY_RUNS + [f"sweep.root={res.sweep_dir.resolve()}"])
    assert sorted(j.run_dir.name for j in planned) == sorted(res.trained)
    assert all(j.status == "completed" for j in planned)
    # The four stages are announced in order, then the run's own results.
    starts = [next(i for i, ln in enumerate(lines) if ln.startswith(f"[{k}/4]")) for k in range(1, 5)]
    assert starts == sorted(starts)
    text = "\n".join(lines)
    study = res.study
    # Each size at its own budget, with its two cooldown branches: 3 points per size.
    budgets = study.points.groupby("params")["tokens"].max().to_dict()
    assert budgets == {float(p): float(t) for p, t in zip(sorted(budgets), (49152, 32768, 16384))}
    assert study.points.groupby("params").size().tolist() == [3, 3, 3]
    # --law auto (the default): the backtest's choice is the law fitted, and the output says why.
    choice = study.checked.choice
    assert choice is not None and study.fit.law == choice.law and len(study.fit.samples) == 20
    assert choice.reason.startswith(f"auto: {choice.law}") and f"    {choice.reason}" in lines
    assert any(ln.startswith("[2/4] Choosing the joint law by backtest at distance (--law auto") for ln in lines)
    # One run per size: the default bootstrap resamples points and the report says why. With
    # 3 runs for 3 sizes, a resample of whole runs lacks all 3 sizes with probability
    # 1 - 3!/3^3 = 78% (Chinchilla's size terms need 3) and has only 1 with 3/27 = 11%.
    from analysis.laws import get_law

    assert study.fit.meta["bootstrap"]["unit"] == "points"
    share = {1: 0, 2: 11, 3: 78}[len(get_law(study.fit.law).size_terms)]
    assert f"{share}% of resamples of whole runs (3 runs, 1 per model size)" in study.fit.report()
    assert study.fit.report() in text.replace("\n    ", "\n")  # the fit report, with intervals and warnings
    # The extrapolation table: one row per smaller model, the largest run as the target.
    assert study.result.target.params == study.points["params"].max()
    assert [m.params for m in study.result.models] == sorted(study.points["params"].unique())[:2]
    for row in study.result.table().splitlines():
        assert row.strip() in text
    assert "own curve: tokens to match" in text  # each model's own run answers beside the law
    assert {c.name for c in res.checks} >= {"loss falls with N", "loss falls with D", "exponents positive",
                                            "no parameter at a bound", "every parameter identified"}
    for c in res.checks:
        assert c.line() in text


def test_report_figures_and_saved_results(demo):
    res = demo["result"]
    names = set(res.written)
    assert {"report.md", "report.html", "curves.png", "isoflop.png", "residuals.png", "frontier.png",
            "fit.json", "extrapolation.csv"} <= names
    for p in res.figures:
        assert p.read_bytes().startswith(b"\x89PNG") and p.parent == res.report_dir
    md = res.report.read_text()
    for heading in ("## Data", "## Fit", "## Sanity checks", "## Compute-matched extrapolation", "## Figures",
                    "## Warnings"):
        assert heading in md
    for c in res.checks:
        assert f"| {c.name} | {c.status} |" in md
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (res.report_dir / img).exists()
    # fit.json is the printed fit; extrapolation.csv holds the table's numbers.
    saved = LawFit.load(res.report_dir / "fit.json")
    assert saved.params == pytest.approx(res.study.fit.params, rel=1e-12)
    csv = pd.read_csv(res.report_dir / "extrapolation.csv")
    assert csv["loss_at_target_compute"].tolist() == pytest.approx(
        [m.loss_at_target_compute for m in res.study.result.models], rel=1e-9)
    assert not [p for p in res.report_dir.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_last_lines_name_the_report_and_the_figures(demo):
    res, lines = demo["result"], demo["lines"]
    report_line, figures_line = lines[-2], lines[-1]
    assert report_line.startswith("Report:") and figures_line.startswith("Figures:")
    assert Path(report_line.split()[1]).resolve() == res.report.resolve()
    shown = [Path(p.strip()) for p in figures_line.split(":", 1)[1].split(",")]
    assert [p.resolve() for p in shown] == [p.resolve() for p in res.figures]
    assert all(p.exists() for p in shown)


def test_second_run_reuses_every_run_and_trains_nothing(demo, capsys):
    out, sweep_dir = demo["out"], demo["result"].sweep_dir
    before = _run_files(sweep_dir)
    attempts = {d.name: (d / "attempts.jsonl").read_text() for d in R.find_run_dirs(sweep_dir)}
    grid = ",".join(f"{m}={t}" for m, t in TINY_GRID)  # --grid: shorthand for the same overrides
    code = main(["demo", "--out", str(out), "--grid", grid, "--bootstrap", "20", "--jobs", "2"] + TINY_OVERRIDES)
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert any("all 3 runs finished already: reusing them, nothing to train" in ln for ln in printed)
    assert _run_files(sweep_dir) == before  # no record, metric row or checkpoint touched
    # No job was even launched: the runs' attempt logs did not grow.
    assert {d.name: (d / "attempts.jsonl").read_text() for d in R.find_run_dirs(sweep_dir)} == attempts
    assert printed[-2].startswith("Report:") and printed[-1].startswith("Figures:")
    # Same data, same seed: the same fit as the first run.
    again = json.loads((demo["result"].report_dir / "fit.json").read_text())
    assert again["params"] == pytest.approx(demo["result"].study.fit.params, rel=1e-12)


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0
    assert "example:\n  scaling demo --out demo_out" in capsys.readouterr().out


@pytest.mark.parametrize("argv, field", [
    (["--bootstrap", "-1"], "bootstrap"),
    (["optim.lrr=1e-3"], "overrides"),
    (["--experiment", "dmeo"], "experiment"),
    (["--grid", "nano=8e6,huge=1e6"], "--grid"),
    (["--grid", "nano=lots"], "--grid"),
    (["--grid", "nano=8e6", "model=nano"], "--grid"),
    (["--lanes", "0"], "--lanes"),
    (["--law", "hoffmann2022"], "law"),
    (["--law", "kaplan_n"], "law"),
    (["--lanes", "2", "--launcher", "basic"], "lanes"),
    (["model=small"], "sweep.tokens_by_model"),
    (["--experiment", "overtrain", "--grid", "nano=2e5"], "--grid"),
    (["--grid", "nano=2e5"], "--grid"),  # one model size: no law, so nothing is trained
    (["model=nano"], "overrides"),
])
def test_bad_input_is_one_line_naming_the_field(tmp_path, capsys, argv, field):
    assert main(["demo", "--out", str(tmp_path / "out")] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("scaling demo: error:") and field in err
    assert not (tmp_path / "out" / "runs").exists()  # refused before anything was trained


def test_a_pip_install_without_notebooks_is_told_where_they_are(tmp_path, monkeypatch):
    # the committed demo runs: nothing trains; with no notebooks/ beside the package (a pip
    # install), the demo says they come with the source repository instead of a dead path
    import scaling.app.demo as demo_mod
    import docs_build as DB

    assert DB.seed_demo(tmp_path / "demo_out") == 4
    monkeypatch.setattr(demo_mod, "NOTEBOOKS", tmp_path / "no_notebooks_here")
    lines = []
    demo_mod.run_demo(tmp_path / "demo_out", bootstrap=0, echo=lines.append)
    (line,) = [ln for ln in lines if ln.startswith("Notebooks:")]
    assert line.startswith("Notebooks: notebooks/ of the source repository (01_loss_vs_tokens.ipynb")
    assert "not installed by pip" in line

"""The Markdown + HTML report: contents, figures beside it, no half-written output on failure."""
import re

import numpy as np
import pandas as pd
import pytest

from analysis.common.errors import InputError
from analysis.extrapolation.study import run_study
from analysis.reporting.report import build_report, markdown_table, markdown_to_html
from analysis.fitting.result import LawFit
from scaling.app.cli import main

P = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}


def _points():
    rows = []
    for n in (1e7, 3e7, 1e8, 3e8):
        for d in (2e8, 6e8, 2e9, 6e9):
            rows.append({"params": n, "tokens": d, "loss": float(LawFit("chinchilla", P).predict(n, d)) * 1.001,
                         "run": f"{n:g}-{d:g}"})
    return pd.DataFrame(rows)


def _fit():
    rng = np.random.default_rng(0)
    base = np.array([P[k] for k in ("E", "A", "B", "alpha", "beta")])
    return LawFit("chinchilla", P, samples=base * rng.normal(1, 0.005, size=(50, 5)), name="synthetic",
                  n_points=16, n_sizes=4, n_budgets=4, method="test", warnings=["a warning from the fit"])


def test_report_holds_data_fit_table_and_figures(tmp_path):
    study = run_study(_points(), law=_fit())
    written = build_report(None, tmp_path / "rep", study=study)
    assert set(written) == {"report.md", "report.html", "curves.png", "isoflop.png", "residuals.png", "frontier.png",
                            "fit.json", "extrapolation.csv"}
    md = (tmp_path / "rep" / "report.md").read_text()
    for heading in ("## Data", "## Fit", "## Compute-matched extrapolation", "## Figures", "## Warnings"):
        assert heading in md
    assert "[[synthetic]]" in md  # the fit's own report
    assert "a warning from the fit" in md
    # One table row per smaller model, with the numbers the result holds.
    section = md.split("## Compute-matched extrapolation")[1].split("## Figures")[0]
    for m in study.result.models:
        row = next(line for line in section.splitlines() if line.startswith(f"| {m.name} |"))
        assert f"{m.loss_at_target_compute:.4g}" in row
        assert ("never" in row) == (not m.reachable)
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (tmp_path / "rep" / img).read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and '<img src="curves.png"' in page
    assert "## Sanity checks" in md and "[OK" not in md  # the checks are a table, not text lines
    assert page.count("<table>") == 3 and "<pre><code>" in page
    assert not [p for p in (tmp_path / "rep").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_failure_leaves_no_report(tmp_path, monkeypatch):
    import analysis.reporting.plots

    def boom(*a, **k):
        raise InputError("cannot draw", field="kind")

    monkeypatch.setattr(analysis.reporting.plots, "plot_study", boom)
    with pytest.raises(InputError):
        build_report(_points(), tmp_path / "rep", law=_fit())
    assert not (tmp_path / "rep").exists() or not any((tmp_path / "rep").iterdir())


def test_markdown_to_html_subset():
    md = "\n".join(["# Title", "", "Some *text* with `a<b` and **bold**.", "", "- one", "- two", "",
                    markdown_table([{"a": "1", "b": "x|y"}]), "", "```text", "<raw> & code", "```",
                    "![cap](fig.png)"])
    page = markdown_to_html(md, title="T")
    assert "<h1>Title</h1>" in page
    assert "<em>text</em>" in page and "<code>a&lt;b</code>" in page and "<strong>bold</strong>" in page
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in page
    assert "<th>a</th><th>b</th>" in page and "<td>x|y</td>" in page
    assert "<pre><code>&lt;raw&gt; &amp; code</code></pre>" in page
    assert '<img src="fig.png" alt="cap">' in page


def test_report_command(tmp_path, capsys):
    csv = tmp_path / "points.csv"
    _points().to_csv(csv, index=False)
    fit = tmp_path / "fit.json"
    _fit().save(fit)
    assert main(["report", str(csv), "--law", str(fit), "-o", str(tmp_path / "out"), "--title", "Ladder"]) == 0
    out = capsys.readouterr().out
    assert "report.html" in out
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Ladder")
    # A file where the directory should be: one line, exit 2.
    (tmp_path / "taken").write_text("x")
    assert main(["report", str(csv), "--law", str(fit), "-o", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_report_says_how_far_each_answer_reaches_and_where_the_runs_cross():
    # the text output's 'Answer distance' and 'Measured' blocks appear in the report too,
    # one list item per model, with the same numbers the study computed
    from analysis.extrapolation.study import run_study
    from analysis.reporting.report import render_report

    study = run_study("docs/data/demo_runs", curves=False)
    md = render_report(study, {})
    r = study.result
    for block in (r.distance_lines(), r.measured_lines()):
        lines = [ln.strip() for ln in block if ln.strip()]
        assert len(lines) >= 2
        assert lines[0] + ":" in md
        assert all(f"- {ln}" in md for ln in lines[1:])
    femto = next(m for m in r.models if m.name == "femto")
    assert f"{femto.distance['tokens_per_param']:.3g} per parameter" in md

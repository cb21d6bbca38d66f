"""Numbers quoted in docs/sweeps.md come from the committed demo run records
(docs/data/demo_runs): the `scaling runs` block and the loss table, recomputed here."""
import re
from pathlib import Path

from analysis.data.loading import load_points
from analysis.fitting.fit import fit_law
from scaling.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = (ROOT / "docs" / "sweeps.md").read_text()
RUNS = ROOT / "docs" / "data" / "demo_runs"


def test_the_runs_block_is_what_scaling_runs_prints(tmp_path, capsys):
    import docs_build as DB

    assert DB.seed_demo(tmp_path / "demo_out") == 4
    assert main(["runs", str(tmp_path / "demo_out" / "runs"), "--final"]) == 0
    out = capsys.readouterr().out.strip()
    block = SWEEPS.split("$ scaling runs demo_out/runs --final\n", 1)[1].split("```", 1)[0].strip()
    assert block == out


def test_the_loss_table_holds_every_committed_point():
    pts = load_points(str(RUNS))
    table = SWEEPS.split("checks every number):", 1)[1]
    rows = re.findall(r"^\| (\d+(?:\.\d+)?[kM]) \|(.*)\|$", table, re.M)
    sizes = sorted(pts["params"].unique())
    seen = 0
    for label, cells in rows:
        tokens = float(label[:-1]) * {"k": 1e3, "M": 1e6}[label[-1]]
        for n, cell in zip(sizes, cells.split("|")):
            at = pts[(pts["params"] == n) & ((pts["tokens"] / tokens - 1).abs() < 0.01)]
            assert (cell.strip() == "") == at.empty, (label, n)
            if not at.empty:
                assert cell.strip() == f"{float(at['loss'].iloc[0]):.3f}", (label, n)
                seen += 1
    assert seen == len(pts) == 16


def test_the_quoted_fit_is_the_auto_fit_of_the_records():
    fit = fit_law(load_points(str(RUNS)), "gadre2024", progress=False)
    assert "fits these 16 points with gadre2024" in SWEEPS
    assert f"E = {fit.params['E']:.3f}" in SWEEPS and f"eta = {fit.params['eta']:.2f}" in SWEEPS

"""One CLI: the law named once, ``--json`` on plot and report, and ``plot --kind all``
file names that never repeat the kind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaling.app.cli import main as cli_main
from cli_testing import CHINCHILLA, POINTS, assert_json_schema


@pytest.fixture(scope="module")
def points(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("consistency") / "points.csv"
    path.write_text(POINTS)
    return path


def _out(capsys, argv) -> str:
    capsys.readouterr()
    assert cli_main([str(a) for a in argv]) == 0
    got = capsys.readouterr()
    assert got.err == "", got.err
    return got.out


def test_the_law_is_named_once_when_its_name_is_the_law(points, capsys):
    lines = _out(capsys, ["extrapolate", points, *CHINCHILLA, "--no-curves"]).splitlines()
    fitted = next(ln for ln in lines if ln.startswith("Law: "))  # after the checks block
    assert fitted.startswith("Law: chinchilla - Hoffmann et al. 2022"), fitted
    lines = _out(capsys, ["extrapolate", "--law", "hoffmann2022", "--models", "7e9", "--target", "65e9:1.4e12"])
    published = next(ln for ln in lines.splitlines() if ln.startswith("Law: "))
    assert published.startswith("Law: hoffmann2022 (chinchilla) - "), published


@pytest.mark.parametrize("name, expected", [
    ("curves.png", ["curves.png", "frontier.png", "isoflop.png", "residuals.png"]),
    ("isoflop.svg", ["curves.svg", "frontier.svg", "isoflop.svg", "residuals.svg"]),
    ("study.png", ["study-curves.png", "study-frontier.png", "study-isoflop.png", "study-residuals.png"]),
])
def test_kind_all_names_files_without_repeating_the_kind(points, capsys, tmp_path, name, expected):
    out = _out(capsys, ["plot", points, *CHINCHILLA, "--kind", "all", "-o", tmp_path / "figs" / name])
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == expected
    assert sorted(out.splitlines()) == [f"wrote {tmp_path / 'figs' / e}" for e in expected]


def test_plot_json_lists_the_files_and_the_fit(points, capsys, tmp_path):
    got = json.loads(_out(capsys, ["plot", points, *CHINCHILLA, "--kind", "all", "--json",
                                   "-o", tmp_path / "study.png"]))
    assert got["written"] == [str(tmp_path / f"study-{k}.png") for k in ("curves", "isoflop", "residuals", "frontier")]
    assert all(Path(p).stat().st_size > 0 for p in got["written"])
    ref = json.loads(_out(capsys, ["fit", points, *CHINCHILLA, "--quiet", "--json"]))
    # the table's 12 points; the fit sets aside the 3 under 20 tokens per parameter
    assert got["law"]["form"] == "chinchilla" and got["n_points"] == 12 and ref["n_points"] == 9
    assert ref["short_runs"] == {"min_tokens_per_param": 20.0, "set_aside": 3, "note": ref["short_runs"]["note"],
                                 "median_offset": ref["short_runs"]["median_offset"]}
    # the table's points are the law's own values: the set-aside runs lie on the law fitted to the rest
    assert abs(ref["short_runs"]["median_offset"]) < 1e-4 and "these lie on the law" in ref["short_runs"]["note"]
    for k, v in ref["law"]["params"].items():  # the figures come from the same fit as `scaling fit`
        assert got["law"]["params"][k] == pytest.approx(v, rel=1e-10), k
    assert got["target"]["params"] == 3e7 and got["target"]["tokens"] == 1e9  # the largest model and budget


def test_report_json_lists_every_file_written(points, capsys, tmp_path):
    got = json.loads(_out(capsys, ["report", points, *CHINCHILLA, "--json", "-o", tmp_path / "report"]))
    assert sorted(Path(p).name for p in got["written"]) == sorted(p.name for p in (tmp_path / "report").iterdir())
    assert {"report.md", "report.html", "curves.png"} <= {Path(p).name for p in got["written"]}
    assert got["failed_checks"] == sum(c["status"] == "fail" for c in got["checks"])
    assert got["checks"] and got["n_points"] == 12


def _bash_complete(script: Path, words: list[str]) -> list[str]:
    """What bash offers for the last of ``words`` through the completion ``script``."""
    import shlex
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    cmd = (f"source {shlex.quote(str(script))}; COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); "
           f"COMP_CWORD={len(words) - 1}; _shtab_scaling; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.split()


def test_bash_completion_offers_commands_options_and_choices(capsys, tmp_path):
    script = tmp_path / "scaling.bash"
    script.write_text(_out(capsys, ["completion", "bash"]))
    assert _bash_complete(script, ["scaling", "ext"]) == ["extrapolate"]
    assert _bash_complete(script, ["scaling", "extrapolate", "--mo"]) == ["--models"]
    from scaling.app.cli.plot import REPORT_KINDS

    assert _bash_complete(script, ["scaling", "plot", "x.csv", "--kind", ""]) == [*REPORT_KINDS, "all"]
    assert _bash_complete(script, ["scaling", "demo", "--j"]) == ["--jobs", "--json"]


def test_zsh_completion_names_every_command(capsys):
    from scaling.app.cli import COMMANDS

    script = _out(capsys, ["completion", "zsh"])
    assert script.startswith("#compdef scaling")
    for name in COMMANDS:
        assert f"_shtab_scaling_{name}" in script, name


def test_train_json_lists_the_run_record(capsys, tmp_path):
    out = tmp_path / "run"
    capsys.readouterr()
    assert cli_main(["train", "model=nano", "tokens=4096", "seq_len=64", "batch_tokens=1024", "data.max_bytes=1000000",
                     "data.val_frac=0.1", "data.val_tokens=1024", f"out={out}", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)  # progress goes to stderr
    assert_json_schema(got, "train")
    assert got["run_dir"] == str(out) and got["status"] == "completed"
    assert got["written"] == sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert json.loads((out / "summary.json").read_text()) == got["summary"]


def test_curve_fit_puts_its_error_beside_the_losss_own_noise(capsys, tmp_path):
    import re

    import numpy as np

    # A constant-rate run whose loss is a power law in the LR area (Tissue et al. 2024 with
    # no annealing), times uniform noise of +-5%: a mean absolute scatter of 2.5%.
    rng = np.random.default_rng(0)
    steps = np.arange(10, 4010, 10)
    loss = (2.0 + 3.0 * (steps * 1e-3) ** -0.5) * (1 + rng.uniform(-0.05, 0.05, len(steps)))
    curve = tmp_path / "run.csv"
    curve.write_text("step,lr,loss\n" + "".join(f"{s},0.001,{x:.6f}\n" for s, x in zip(steps, loss)))
    out = _out(capsys, ["curve", "fit", curve])
    note = next(ln for ln in out.splitlines() if "row-to-row scatter" in ln)
    err, scatter = (float(x) for x in re.findall(r"([0-9.]+)%", note)[:2])
    assert scatter == pytest.approx(2.5, abs=0.4), note
    assert err == pytest.approx(2.5, abs=0.5) and "at the noise level" in note, note


@pytest.mark.parametrize("command", ["fit", "extrapolate", "validate", "plot"])
def test_help_states_the_policys_own_numbers(capsys, command):
    # the help is built without importing the analysis layer (scaling --help stays fast), so
    # the policy's numbers are written into it; this keeps them the policy's
    from analysis.selection.policy import POLICY

    with pytest.raises(SystemExit):
        cli_main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"the policy's {POLICY.min_tokens_per_param.value:g}," in text
    if command == "fit":
        assert f"under {POLICY.min_tokens_per_param.value:g} tokens per parameter are set aside" in text
        assert f"within a factor {1 + POLICY.tie.value:g} of the best" in text
        # auto never chooses a law without a floor, so the help must not name one as a candidate
        assert "chinchilla and gadre2024, is fitted" in text and "kaplan_nd, is" not in text

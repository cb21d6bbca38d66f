"""Write paths and edge cases of the analysis commands: each refusal is one line on stderr
naming the option and the fix, exit status 2, and leaves no file or directory behind.

The output cases cover a location under a file, a directory where a file should go, a
disk that fills up in the middle of a write (``os.fsync`` made to fail, as it does on a
full disk) and, where the tests do not run as root, a read-only directory.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from analysis.common import records as R
from cli_testing import CHINCHILLA, POINTS
from scaling.app.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]

def write_summary(run_dir: Path, **fields) -> None:
    """A completed run's summary.json with the required fields (no metrics: enough for
    `scaling runs` and for the fits, which read final points)."""
    s = {k: None for k, (req, _) in R.SUMMARY_FIELDS.items() if req}
    s.update(schema_version=R.SCHEMA_VERSION, run_name=run_dir.name, status="completed", config_hash="x")
    s.update(fields)
    R.atomic_write_json(run_dir / R.SUMMARY_FILE, s)


def write_sweep(d: Path) -> None:
    """Twelve completed runs, on the same synthetic law as POINTS."""
    for n in (1e6, 3e6, 1e7, 3e7):
        for t in (1e8, 3e8, 1e9):
            write_summary(d / f"model={n:g},tokens={t:g}", params=n, params_nonembedding=0.8 * n, tokens=t,
                          tokens_trained=t, flops=6 * n * t, flops_6n=6 * n * t,
                          final_val_loss=round(1.7 + 400 / n ** 0.34 + 410 / t ** 0.28, 6))


def _curve(path: Path, lr) -> None:
    rows, s1 = ["step,lr,loss"], 0.0
    for s in range(10, 1001, 10):
        s1 += lr(s) * 10
        rows.append(f"{s},{lr(s):.6g},{2 + 0.5 * (s1 * 1000) ** -0.3 - 10 * (1e-3 - lr(s)):.6f}")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    import numpy as np

    d = tmp_path_factory.mktemp("cli_errors")
    (d / "good.csv").write_text(POINTS)
    (d / "blocker").write_text("a file where a directory is expected\n")
    write_sweep(d / "sweep")
    write_sweep(d / "blocked_sweep")
    (d / "blocked_sweep" / "runs.csv").mkdir()  # the index cannot replace a directory
    (d / "empty").mkdir()
    _curve(d / "const.csv", lambda s: 1e-3)
    _curve(d / "cos.csv", lambda s: 1e-3 * (0.1 + 0.45 * (1 + np.cos(np.pi * s / 1000))))
    assert cli_main(["curve", "fit", str(d / "const.csv"), str(d / "cos.csv"), "--law", "annealing",
                     "-o", str(d / "curve.json"), "--json"]) == 0
    return d


def snapshot(d: Path) -> dict:
    """Every path below ``d`` with its file's mtime (a directory's changes when a temporary
    file comes and goes, which leaves nothing behind)."""
    return {str(p.relative_to(d)): None if p.is_dir() else p.stat().st_mtime_ns for p in d.rglob("*")}


def run_cli(argv, work, capsys):
    """(exit status, stderr lines, warnings shown) of one in-process command."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = cli_main([a.format(d=work) for a in argv])
    err = capsys.readouterr().err
    shown = [str(w.message) for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))]
    return rc, err.strip().splitlines(), shown


def assert_one_line(rc, lines, shown, cmd, field, words):
    assert rc == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"scaling {cmd}: error: {field}: "), lines[0]
    assert "(fix: " in lines[0] and "Traceback" not in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not shown, shown


#: (id, argv, command, field, words the message must hold)
UNDER_A_FILE = [
    ("fit --save", ["fit", "{d}/good.csv", *CHINCHILLA, "--quiet", "-o", "{d}/blocker/fit.json"], "fit", "--save",
     ["{d}/blocker/fit.json", "{d}/blocker is a file"]),
    ("plot -o", ["plot", "{d}/good.csv", *CHINCHILLA, "-o", "{d}/blocker/fig.png"], "plot", "--output",
     ["{d}/blocker is a file"]),
    ("plot --kind all", ["plot", "{d}/good.csv", *CHINCHILLA, "--kind", "all", "-o", "{d}/blocker/sub/fig.png"],
     "plot", "--output", ["{d}/blocker is a file"]),
    ("report -o under a file", ["report", "{d}/good.csv", *CHINCHILLA, "-o", "{d}/blocker/report"], "report",
     "--output", ["{d}/blocker is a file"]),
    ("report -o a file", ["report", "{d}/good.csv", *CHINCHILLA, "-o", "{d}/blocker"], "report", "--output",
     ["{d}/blocker: it is a file"]),
    ("curve fit -o", ["curve", "fit", "{d}/const.csv", "{d}/cos.csv", "--law", "annealing", "-o",
                      "{d}/blocker/c.json"], "curve", "--output", ["{d}/blocker is a file"]),
    ("curve predict -o", ["curve", "predict", "{d}/curve.json", "{d}/cos.csv", "-o", "{d}/blocker/pred.csv"],
     "curve", "--output", ["{d}/blocker is a file"]),
    ("runs --reindex onto a directory", ["runs", "{d}/blocked_sweep", "--reindex"], "runs", "--reindex",
     ["{d}/blocked_sweep/runs.csv"]),
    ("demo --out", ["demo", "--out", "{d}/blocker/demo"], "demo", "--out", ["{d}/blocker is a file"]),
    ("fit --save a directory", ["fit", "{d}/good.csv", *CHINCHILLA, "--quiet", "-o", "{d}/empty"], "fit", "--save",
     ["it is a directory"]),
]


@pytest.mark.parametrize("argv, cmd, field, words", [c[1:] for c in UNDER_A_FILE], ids=[c[0] for c in UNDER_A_FILE])
def test_an_unwritable_output_is_one_line_and_leaves_nothing(work, capsys, argv, cmd, field, words):
    before = snapshot(work)
    rc, lines, shown = run_cli(argv, work, capsys)
    assert_one_line(rc, lines, shown, cmd, field, [w.format(d=work) for w in words])
    assert snapshot(work) == before


FULL_DISK = [
    ("fit --save", ["fit", "{d}/good.csv", *CHINCHILLA, "--quiet", "-o", "{d}/new/sub/fit.json"], "fit", "--save"),
    ("plot -o", ["plot", "{d}/good.csv", *CHINCHILLA, "-o", "{d}/new/fig.png"], "plot", "--output"),
    ("report -o", ["report", "{d}/good.csv", *CHINCHILLA, "-o", "{d}/new/report"], "report", "--output"),
    ("curve predict -o", ["curve", "predict", "{d}/curve.json", "{d}/cos.csv", "-o", "{d}/new/pred.csv"],
     "curve", "--output"),
    ("runs --reindex", ["runs", "{d}/sweep", "--reindex"], "runs", "--reindex"),
]


@pytest.mark.parametrize("argv, cmd, field", [c[1:] for c in FULL_DISK], ids=[c[0] for c in FULL_DISK])
def test_a_disk_that_fills_up_while_writing_is_one_line_and_leaves_nothing(work, capsys, monkeypatch, argv, cmd,
                                                                              field):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    before = snapshot(work)
    monkeypatch.setattr(R.os, "fsync", full)
    rc, lines, shown = run_cli(argv, work, capsys)
    monkeypatch.undo()
    assert_one_line(rc, lines, shown, cmd, field, ["no space left on the device"])
    assert snapshot(work) == before  # no temporary file, no half report, no directory made on the way


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_directory_is_refused_before_the_fit(work, capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, lines, shown = run_cli(["fit", "{d}/good.csv", *CHINCHILLA, "--quiet", "-o", f"{ro}/fit.json"],
                                   work, capsys)
        assert_one_line(rc, lines, shown, "fit", "--save", [f"{ro} is not writable"])
        assert not any(ro.iterdir())
    finally:
        ro.chmod(0o700)


def test_the_same_in_a_real_process(work, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = ["plot", f"{work}/good.csv", *CHINCHILLA, "-o", f"{work}/blocker/fig.png"]
    proc = subprocess.run([sys.executable, "-m", "scaling", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("scaling plot: error: --output: cannot write ")
    assert proc.stdout == "" and not any(tmp_path.iterdir())


BOOTSTRAP = [
    ("fit", ["fit", "{d}/good.csv", "--bootstrap", "100000000", "--quiet", "-o", "{d}/fit.json"]),
    ("fit approach2", ["fit", "{d}/good.csv", "--law", "approach2", "--bootstrap", "100000001"]),
    ("plot", ["plot", "{d}/good.csv", "--bootstrap", "100000000", "-o", "{d}/fig.png"]),
    ("report", ["report", "{d}/good.csv", "--bootstrap", "100000000", "-o", "{d}/report"]),
    ("demo", ["demo", "--out", "{d}/demo", "--bootstrap", "100000000"]),
    ("extrapolate", ["extrapolate", "{d}/good.csv", "--law", "chinchilla", "--bootstrap", "100000000"]),
]


@pytest.mark.parametrize("argv", [c[1] for c in BOOTSTRAP], ids=[c[0] for c in BOOTSTRAP])
def test_an_absurd_bootstrap_is_refused_at_once(work, capsys, argv):
    import time

    from scaling.app.cli._common import MAX_BOOTSTRAP

    before = snapshot(work)
    t0 = time.perf_counter()
    rc, lines, shown = run_cli(argv, work, capsys)
    assert time.perf_counter() - t0 < 30  # refused, not started (one refit alone takes about a second)
    assert_one_line(rc, lines, shown, argv[0], "--bootstrap", [f"more than the {MAX_BOOTSTRAP}", "use 1000"])
    assert snapshot(work) == before


def test_the_bootstrap_bound_itself_is_accepted():
    from scaling.app.cli._common import MAX_BOOTSTRAP, check_bootstrap
    from analysis.common.errors import InputError

    assert check_bootstrap(MAX_BOOTSTRAP) == MAX_BOOTSTRAP and check_bootstrap(0) == 0
    with pytest.raises(InputError, match="more than the"):
        check_bootstrap(MAX_BOOTSTRAP + 1)


def test_reindexing_a_directory_without_runs_writes_no_empty_index(work, capsys):
    before = snapshot(work)
    rc, lines, shown = run_cli(["runs", "{d}/empty", "--reindex"], work, capsys)
    assert_one_line(rc, lines, shown, "runs", "--reindex", [f"no run records under {work}/empty"])
    assert snapshot(work) == before and not any((work / "empty").iterdir())
    # ...so that listing it afterwards still says there is nothing there.
    rc, lines, shown = run_cli(["runs", "{d}/empty"], work, capsys)
    assert rc == 2 and len(lines) == 1 and "no runs here" in lines[0]


def test_reindexing_a_sweep_writes_its_index(tmp_path, capsys):
    write_sweep(tmp_path)
    rc, lines, shown = run_cli(["runs", str(tmp_path), "--reindex", "--json"], tmp_path, capsys)
    assert rc == 0 and not lines
    import pandas as pd

    df = pd.read_csv(tmp_path / "runs.csv")
    assert len(df) == 12 and set(df["status"]) == {"completed"}


@pytest.fixture
def truncated(tmp_path):
    """A sweep whose smallest run's summary.json was cut off mid-write, and the same sweep
    without that run (the reference a skipping fit must agree with)."""
    import shutil

    write_sweep(tmp_path / "sweep")
    bad = tmp_path / "sweep" / "model=1e+06,tokens=1e+08"
    shutil.copytree(tmp_path / "sweep", tmp_path / "without", ignore=lambda d, names: [])
    shutil.rmtree(tmp_path / "without" / bad.name)
    summary = bad / R.SUMMARY_FILE
    summary.write_bytes(summary.read_bytes()[:100])
    return tmp_path / "sweep", summary, tmp_path / "without"


def _real(argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-m", "scaling", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


#: The fix a damaged summary.json is given: deleting it lets the run's command resume it.
DAMAGED = ("the file is damaged (e.g. a copy cut short); delete it and rerun the run's command, which resumes "
           "from the run's newest checkpoint")


def test_runs_lists_a_sweep_with_a_truncated_summary_with_one_warning_line(truncated, tmp_path):
    sweep, summary, _ = truncated
    proc = _real(["runs", sweep], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"scaling runs: warning: skipped a run whose record cannot be read: "
                                        f"{summary}: not valid JSON (Expecting ',' delimiter) (fix: {DAMAGED})"]
    assert "11 runs: 11 completed" in proc.stdout


def test_fit_refuses_a_truncated_run_and_names_the_way_to_skip_it(truncated, tmp_path, capsys):
    sweep, summary, _ = truncated
    rc, lines, shown = run_cli(["fit", str(sweep), *CHINCHILLA, "--quiet"], tmp_path, capsys)
    assert_one_line(rc, lines, shown, "fit", str(summary), ["not valid JSON", "--on-bad-rows omit"])


def test_on_bad_rows_omit_skips_the_truncated_run_with_a_warning(truncated, tmp_path, capsys):
    import json

    sweep, summary, without = truncated
    proc = _real(["fit", sweep, *CHINCHILLA, "--quiet", "--json", "--on-bad-rows", "omit"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"scaling fit: warning: skipped a run whose record cannot be read: "
                                        f"{summary}: not valid JSON (Expecting ',' delimiter) (fix: {DAMAGED})"]
    got = json.loads(proc.stdout)
    # the reference fit, on the sweep without that run, in this process
    capsys.readouterr()
    assert cli_main(["fit", str(without), *CHINCHILLA, "--quiet", "--json"]) == 0
    ref = capsys.readouterr()
    assert ref.err == ""
    want = json.loads(ref.out)
    assert got["n_points"] == want["n_points"] and got["short_runs"] == want["short_runs"]
    assert got["n_points"] + got["short_runs"]["set_aside"] == 11
    for k, v in want["law"]["params"].items():  # the same fit as on the sweep without that run
        assert got["law"]["params"][k] == pytest.approx(v, rel=1e-10), k


def test_report_skips_the_truncated_run_under_omit(truncated, tmp_path, capsys):
    sweep, summary, _ = truncated
    out = tmp_path / "report"
    rc, lines, shown = run_cli(["report", str(sweep), *CHINCHILLA, "--on-bad-rows", "omit", "--no-curves",
                                "-o", str(out)], tmp_path, capsys)
    assert rc == 0, lines
    assert len(shown) == 1 and "skipped a run whose record cannot be read" in shown[0]
    md = (out / "report.md").read_text()
    assert "11 points from 4 model sizes" in md and "left out 1 run(s) whose record cannot be read" in md


def test_report_with_curves_skips_the_truncated_run_under_omit(truncated, tmp_path, capsys):
    sweep, _, _ = truncated
    rc, lines, shown = run_cli(["report", str(sweep), *CHINCHILLA, "--on-bad-rows", "omit", "-o",
                                str(tmp_path / "report")], tmp_path, capsys)
    assert rc == 0, lines


def test_options_may_follow_the_experiment_and_its_overrides(work, capsys):
    before = snapshot(work)
    out = f"{work}/new_sweep"
    rc = cli_main(["sweep", "--dry-run", "--out", out, "demo", "model=nano,micro", "tokens=1e5"])
    reference = capsys.readouterr()
    assert rc == 0 and reference.err == ""
    for argv in (["sweep", "demo", "--dry-run", "model=nano,micro", "--out", out, "tokens=1e5"],
                 ["sweep", "demo", "model=nano,micro", "--dry-run", "tokens=1e5", "--out", out]):
        assert cli_main(argv) == 0
        got = capsys.readouterr()
        assert got.err == "" and got.out == reference.out
    assert "2 runs, 2 to train" in reference.out
    assert snapshot(work) == before


def test_a_stray_word_after_the_options_is_still_a_usage_error(work, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["sweep", "demo", "--dry-run", "model=nano", "oops"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "unrecognized arguments" in err[0] and "oops" in err[0]


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["table", "json"])
def test_a_dry_run_where_every_run_is_invalid_exits_2(work, capsys, extra):
    before = snapshot(work)
    rc, lines, shown = run_cli(["sweep", "--dry-run", *extra, "--out", "{d}/new_sweep", "demo", "tokens=-1"],
                               work, capsys)
    assert_one_line(rc, lines, shown, "sweep", "overrides",
                    ["all 4 runs are invalid", "budget must be positive", "fix: give a positive number"])
    assert snapshot(work) == before


def test_a_dry_run_with_some_invalid_runs_counts_only_the_valid_ones_to_train(work, capsys):
    rc = cli_main(["sweep", "--dry-run", "--out", f"{work}/new_sweep", "demo", "model=nano,micro",
                   "tokens=1e5,-1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "4 runs, 2 to train" in out and "2 invalid (see the error column)" in out


def test_fit_given_a_saved_fit_says_what_it_is_and_the_command_it_names_works(work, capsys, tmp_path):
    saved = tmp_path / "fit.json"
    assert cli_main(["fit", str(work / "good.csv"), *CHINCHILLA, "--quiet", "-o", str(saved)]) == 0
    capsys.readouterr()
    rc, lines, shown = run_cli(["fit", str(saved), "--quiet"], work, capsys)
    assert_one_line(rc, lines, shown, "fit", str(saved), ["is a saved fit (LawFit), not a table of points",
                                                          f"scaling extrapolate {saved}"])
    hint = lines[0].split("`")[1].split()  # the command the fix names, run as written
    assert hint[:2] == ["scaling", "extrapolate"]
    assert cli_main(hint[1:]) == 0
    assert "Target: 65B" in capsys.readouterr().out


def test_train_overrides_may_follow_show_config(capsys):
    def shown():
        # the time estimate is measured each call: everything else must agree
        return [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("# training time")]

    assert cli_main(["train", "--show-config", "model=nano", "tokens=1e5"]) == 0
    reference = shown()
    assert cli_main(["train", "model=nano", "--show-config", "tokens=1e5"]) == 0
    assert shown() == reference and "tokens: 100000" in "\n".join(reference)


@pytest.mark.parametrize("modes", [["-m", "--cfg", "job"], ["--multirun", "--cfg=job"], ["-m", "--info"],
                                   ["--cfg", "job", "--info"]])
def test_two_hydra_modes_are_one_line_not_a_traceback(tmp_path, modes):
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)}
    res = subprocess.run([sys.executable, "-m", "sweeps", "experiment=demo", *modes], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("python -m sweeps: error: ") and "(fix: " in lines[0] and "Traceback" not in res.stderr
    assert res.stdout == "" and not list(tmp_path.iterdir())  # nothing composed, nothing written
    if "--info" not in modes:  # the fix's command works: one job's config
        fixed = lines[0].split("`")[1].split()
        ok = subprocess.run([sys.executable, *fixed[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
        assert ok.returncode == 0 and ok.stdout.startswith("model: "), ok.stderr

"""The README against fresh runs (``make docs``, docs/studies/docs_build.py).

Two links tie the README's demo numbers to training on the machine at hand, since CI
cannot retrain the whole demo (about 400 s):

1. the analysis redone from the committed run records (``docs/data/demo_runs``) prints
   exactly the README's blocks (timings masked), and the committed points are those runs';
2. a fresh training run of the first steps of each demo run (and of the README's
   ``scaling train`` example) logs the same losses as the records within
   ``PREFIX_TOLERANCE``, the tolerance the README states.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import docs_build as DB

CHECKED = [b.name for b in DB.BLOCKS if b.checked and b.name not in ("demo", "report-fit")]


def _block(name):
    return next(b for b in DB.BLOCKS if b.name == name)


def test_committed_points_are_the_committed_runs_points():
    committed = pd.read_csv(DB.DEMO_POINTS)
    fresh = DB.points_frame(DB.DEMO_RUNS)
    assert list(committed["run"]) == list(fresh["run"]) and len(committed) == 16
    for col in ("params", "tokens", "loss", "flops"):
        pd.testing.assert_series_equal(committed[col].astype(float), fresh[col].astype(float), rtol=1e-9)


def test_committed_records_hold_no_machine_paths():
    for path in DB.DEMO_RUNS.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"(/home/|/root/|/tmp/|/work/|[A-Z]:\\\\)", text), path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo rerun on the committed records: nothing trained, the analysis redone."""
    demo_dir = tmp_path_factory.mktemp("docs") / "demo_out"
    assert DB.seed_demo(demo_dir) == 4
    return demo_dir, DB.render(_block("demo"), demo_dir)


def test_readme_demo_block_is_what_the_demo_prints(demo):
    demo_dir, body = demo
    assert "0 run(s) trained, 4 reused" in body   # the analysis was redone, nothing was retrained
    diff = DB.differences(DB.README.read_text(), "demo", body)
    assert not diff, "\n".join(diff) + "\n(fix: make docs)"


def test_readme_report_block_is_the_demo_report(demo):
    demo_dir, _ = demo
    diff = DB.differences(DB.README.read_text(), "report-fit", DB.render(_block("report-fit"), demo_dir))
    assert not diff, "\n".join(diff) + "\n(fix: make docs)"


@pytest.mark.parametrize("name", CHECKED)
def test_readme_block_is_what_the_command_prints(tmp_path, name):
    diff = DB.differences(DB.README.read_text(), name, DB.render(_block(name), tmp_path / "demo_out"))
    assert not diff, "\n".join(diff) + "\n(fix: make docs)"


def test_every_marked_block_has_a_builder_and_back():
    page = DB.README.read_text()
    marked = set(re.findall(r"<!-- docs:([\w-]+) begin -->", page))
    assert marked == {b.name for b in DB.BLOCKS} | {"machine"}
    assert "make docs" in DB.block_of(page, "machine")


def test_masking_leaves_numbers_of_results_alone():
    # a changed loss is a difference; a changed timing is not
    page = "<!-- docs:demo begin -->\n```console\nloss 1.613\nDone in 6.8 min\n```\n<!-- docs:demo end -->\n"
    assert DB.differences(page, "demo", "```console\nloss 1.613\nDone in 0.4 min\n```") == []
    assert DB.differences(page, "demo", "```console\nloss 1.614\nDone in 6.8 min\n```") != []


# ----------------------------------------------------------------------------- fresh training


def _overrides(d: dict, prefix: str = "") -> list[str]:
    """A saved config.yaml as the ``key=value`` overrides that rebuild it."""
    out = []
    for k, v in d.items():
        key = prefix + k
        if isinstance(v, dict):
            out += _overrides(v, key + ".")
        elif key not in ("out", "run_name"):
            if isinstance(v, list):
                v = "[" + ",".join(str(x) for x in v) + "]"
            out.append(f"{key}={'null' if v is None else v}")
    return out


def _rows(path: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, path.read_text().splitlines())}


def _stop_step(metrics: dict[int, dict], least: int = 8) -> int:
    """The first step from ``least`` on with a validation loss: the prefix the check
    retrains (8 to 39 steps of the demo's runs, a few seconds each)."""
    return min(s for s, r in metrics.items() if "val_loss" in r and s >= least)


def _train(overrides, out: Path, stop: int) -> subprocess.Popen:
    """``scaling train`` stopped by SIGTERM right after step ``stop`` (the trainer's own fault
    hook), as a pre-empted run would be: it checkpoints and exits 143."""
    env = {**os.environ, "PYTHONPATH": str(DB.ROOT), "SCALING_FAULT": f"step@{stop}:TERM"}
    return subprocess.Popen([sys.executable, "-m", "scaling", "train", *overrides, f"out={out}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _corpus_or_skip(fresh: dict, committed: dict) -> None:
    keys = ("source", "tokenizer", "train_tokens", "val_tokens")
    got, want = ({k: s["data"].get(k) for k in keys} for s in (fresh, committed))
    if got != want:
        pytest.skip(f"the built-in corpus is this Python's standard library, and this Python "
                    f"({sys.version.split()[0]}) gives {got['train_tokens']} training tokens, not the "
                    f"{want['train_tokens']} of Python {committed['versions']['python']} the demo was trained on")


def _close(fresh: float, committed: float) -> bool:
    return abs(fresh - committed) <= DB.PREFIX_TOLERANCE * abs(committed)


def test_fresh_training_reproduces_the_first_steps_of_every_demo_run(tmp_path):
    # Each demo run retrained from its committed config up to its first validation from
    # step 8 on (8 to 39 steps), two at a time as the demo trains them: every logged train
    # and validation loss must match the record within the README's tolerance.
    runs = sorted(p for p in DB.DEMO_RUNS.iterdir() if p.is_dir())
    assert len(runs) == 4
    import yaml

    jobs = []
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        metrics = _rows(run / "metrics.jsonl")
        jobs.append((run, metrics, _stop_step(metrics), _overrides(cfg)))
    results = []
    for i in range(0, len(jobs), 2):
        procs = [(job, _train(job[3], tmp_path / job[0].name, job[2])) for job in jobs[i:i + 2]]
        for job, proc in procs:
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 143, out[-2000:]
            results.append(job)
    for run, committed, stop, _ in results:
        summary = json.loads((tmp_path / run.name / "summary.json").read_text())
        recorded = json.loads((run / "summary.json").read_text())
        _corpus_or_skip(summary, recorded)
        assert summary["config_hash"] == recorded["config_hash"], run.name   # the same run, rebuilt
        fresh = _rows(tmp_path / run.name / "metrics.jsonl")
        assert max(fresh) == stop and set(fresh) == {s for s in committed if s <= stop}
        for step, row in fresh.items():
            for key in ("train_loss", "val_loss"):
                if key in committed[step]:
                    assert _close(row[key], committed[step][key]), (run.name, step, key, row[key],
                                                                    committed[step][key])


def test_fresh_training_reproduces_the_readme_train_example(tmp_path):
    # The README's `scaling train model=nano tokens=1e6` run, retrained to its step 8: the
    # losses the README prints for steps 1 and 8 within the stated tolerance.
    body = DB.block_of(DB.README.read_text(), "train")
    shown = {int(m.group(1)): (float(m.group(2)), float(m.group(3)))
             for m in re.finditer(r"^step (\d+)/\d+ .* loss ([\d.]+) val ([\d.]+)", body, re.M)}
    early = {s: v for s, v in shown.items() if s <= 8}
    assert len(early) >= 2, body
    proc = _train(["model=nano", "tokens=1e6"], tmp_path / "nano", max(early))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 143, out[-2000:]
    fresh = _rows(tmp_path / "nano" / "metrics.jsonl")
    for step, (loss, val) in early.items():
        # the README rounds to 4 decimals
        assert abs(fresh[step]["train_loss"] - loss) <= DB.PREFIX_TOLERANCE * loss + 5e-5, (step, fresh[step])
        assert abs(fresh[step]["val_loss"] - val) <= DB.PREFIX_TOLERANCE * val + 5e-5, (step, fresh[step])

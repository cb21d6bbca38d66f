"""Bad input, second round: cases that used to end in a traceback, be accepted silently,
or give a misleading message. Same contract as ``test_bad_input.py``: exit status 2, one
line on stderr that starts with the command and names the field, a fix, no traceback,
no warning, and no output file left behind.

Most cases run in this process through ``scaling.cli.main``; the ones where the process
boundary matters (``python -m sweeps``, Ctrl-C) run in a child process.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from cli_testing import POINTS
from scaling.cli import main as cli_main
from trainer_testing import TINY

ROOT = Path(__file__).resolve().parents[1]


def _write_inputs(d: Path) -> None:
    (d / "good.csv").write_text(POINTS)
    (d / "tabs.csv").write_text(POINTS.replace(",", "\t"))
    (d / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    (d / "not_a_fit.json").write_text(json.dumps({"hello": 1, "world": [1, 2]}))
    # a sweep whose only run has a summary that is not text, and one whose summary was cut short
    for name, data in (("sweep_garbage", bytes(range(128, 256)) * 4), ("sweep_truncated", b'{"schema_version": 1, "st')):
        (d / name / "r").mkdir(parents=True)
        (d / name / "r" / "summary.json").write_bytes(data)
    (d / "sweep_bad_index").mkdir()
    (d / "sweep_bad_index" / "runs.csv").write_bytes(bytes(range(128, 256)) * 4)


#: (id, argv with {d} for the work directory, field named first)
CASES = [
    # --- tracebacks
    ("plot: negative dpi", ["plot", "{d}/good.csv", "--dpi", "-5", "-o", "{d}/fig.png"], "--dpi"),
    ("train: NaN learning rate", ["train", "tokens=1e5", "optim.lr=nan"], "optim.lr"),
    ("train: NaN beta1", ["train", "tokens=1e5", "optim.beta1=nan"], "optim.beta1"),
    ("train: negative threads", ["train", "tokens=1e5", "threads=-1"], "threads"),
    ("runs: a points table is not a sweep", ["runs", "{d}/good.csv"], "{d}/good.csv"),
    ("runs: a summary.json that is not text", ["runs", "{d}/sweep_garbage"], "{d}/sweep_garbage/r/summary.json"),
    ("runs: a runs.csv that is not text", ["runs", "{d}/sweep_bad_index"], "{d}/sweep_bad_index/runs.csv"),
    ("runs: a file that is not text", ["runs", "{d}/garbage.bin"], "{d}/garbage.bin"),
    # --- silent nonsense
    ("train: zero heads", ["train", "tokens=1e5", "arch.n_heads=0"], "arch.n_heads"),
    ("train: zero width", ["train", "tokens=1e5", "arch.d_model=0"], "arch.d_model"),
    ("train: zero layers", ["train", "tokens=1e5", "arch.n_layers=0"], "arch.n_layers"),
    # --- misleading messages
    ("train: seq_len longer than the batch", ["train", "tokens=1e5", "seq_len=100000000"], "seq_len"),
    ("runs: a truncated summary.json", ["runs", "{d}/sweep_truncated"], "{d}/sweep_truncated/r/summary.json"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input_round2")
    _write_inputs(d)
    return d


def _argv(argv, work, cache):
    out = [a.format(d=work) for a in argv]
    if out[0] == "train":  # a tiny model and corpus slice; every run would write under {d}/run
        out = ["train", *TINY, f"data.cache_dir={cache}", f"out={work}/run", *out[1:]]
    return out


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*")}


def one_line(err: str, cmd: str, field: str) -> str:
    """The single stderr line, checked: ``scaling CMD: error: FIELD...(fix: ...)``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    head = f"{cmd}: error: {field}"
    assert lines[0].startswith(head), (lines[0], head)
    assert "(fix: " in lines[0] and "Traceback" not in err
    return lines[0]


def run_cli(argv, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rc = cli_main(argv)
        except SystemExit as e:  # argparse
            rc = e.code
    shown = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))
             and not issubclass(w.category, DeprecationWarning)]
    assert not shown, [str(w.message) for w in shown]  # they would be more lines on stderr
    return rc, capsys.readouterr()


@pytest.mark.parametrize("argv, field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_field(work, cache, capsys, argv, field):
    before = _snapshot(work)
    rc, cap = run_cli(_argv(argv, work, cache), capsys)
    assert rc == 2, cap.err
    one_line(cap.err, f"scaling {argv[0]}", field.format(d=work))
    assert _snapshot(work) == before  # no partial output, no run directory


def test_a_points_table_given_to_runs_says_it_is_not_a_sweep(work, capsys):
    rc, cap = run_cli(["runs", str(work / "good.csv")], capsys)
    line = one_line(cap.err, "scaling runs", str(work / "good.csv"))
    assert "not a sweep index" in line and "scaling fit" in line


def test_a_truncated_summary_says_deleting_it_resumes(work, capsys):
    rc, cap = run_cli(["runs", str(work / "sweep_truncated")], capsys)
    line = one_line(cap.err, "scaling runs", str(work / "sweep_truncated" / "r" / "summary.json"))
    assert "not valid JSON" in line and "delete it" in line and "resumes" in line


def test_seq_len_beyond_the_batch_does_not_suggest_a_batch_of_that_size(work, cache, capsys):
    rc, cap = run_cli(_argv(["train", "tokens=1e5", "seq_len=100000000"], work, cache), capsys)
    line = one_line(cap.err, "scaling train", "seq_len")
    assert "multiple of 100000000" not in line and "longer than a whole batch" in line

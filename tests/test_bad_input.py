"""Bad input across the ``scaling`` commands, one table: every case must exit with status
2, print exactly one line on stderr that names the offending field, warn about nothing
else, and leave no output file behind (a fit file, a figure, a report, a run record).

Cases run in this process through ``scaling.app.cli.main``; two of them are repeated in a
real child process to show the same at the process level.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from scaling.app.cli import main as cli_main
from trainer_testing import bad_input_argv, mtimes

ROOT = Path(__file__).resolve().parents[1]

POINTS = "params,tokens,loss\n" + "".join(
    f"{n:g},{d:g},{1.7 + 400 / n ** 0.34 + 410 / d ** 0.28:.6f}\n"
    for n in (1e6, 3e6, 1e7, 3e7) for d in (1e8, 3e8, 1e9))


def _write_inputs(d: Path) -> None:
    """The bad (and a few good) inputs the cases point at, all inside ``d``."""
    (d / "good.csv").write_text(POINTS)
    (d / "wrong_columns.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    lines = POINTS.splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",nan"
    (d / "nan_loss.csv").write_text("\n".join(lines) + "\n")
    (d / "negative_tokens.csv").write_text(POINTS.replace(",1e+09,", ",-1e+09,"))
    (d / "one_size.csv").write_text("params,tokens,loss\n" + "".join(
        f"1e6,{t:g},{2 + 1 / t ** 0.1:.5f}\n" for t in (1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9, 6.4e9)))
    (d / "one_budget.csv").write_text("params,tokens,loss\n" + "".join(
        f"{n:g},1e9,{2 + 1 / n ** 0.1:.5f}\n" for n in (1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7, 6.4e7)))
    (d / "header_only.csv").write_text("params,tokens,loss\n")
    (d / "garbage.csv").write_bytes(bytes(range(256)) * 4)
    (d / "curve_no_lr.csv").write_text("step,loss\n" + "".join(f"{s},{3 - s / 100}\n" for s in range(1, 50)))
    (d / "empty_corpus").mkdir()
    from analysis.common import records as R

    summary = {k: None for k, (req, _) in R.SUMMARY_FIELDS.items() if req}
    summary.update(schema_version=R.SCHEMA_VERSION, run_name="r", status="completed", params=1000,
                   params_nonembedding=800, tokens=4096, tokens_trained=4096, flops=1e9, flops_6n=8e8,
                   config_hash="x", final_val_loss=2.5)
    R.atomic_write_json(d / "sweep" / "r" / R.SUMMARY_FILE, summary)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 500, 20000)
    for name, magic, count, extra in (("bad_magic", 20240521, 20000, b""), ("truncated", 20240520, 30000, b""),
                                      ("out_of_vocab", 20240520, 20000, b"")):
        shards = d / f"shards_{name}"
        shards.mkdir()
        toks = tokens.copy()
        if name == "out_of_vocab":
            toks[12345] = 900  # one id past vocab_size=500, in the middle of the shard
        header = np.zeros(256, dtype=np.int32)
        header[:3] = (magic, 1, count)
        (shards / "train.bin").write_bytes(header.tobytes() + toks.astype(np.uint16).tobytes() + extra)
        val = np.zeros(256, dtype=np.int32)
        val[:3] = (20240520, 1, 5000)
        (shards / "val.bin").write_bytes(val.tobytes() + tokens[:5000].astype(np.uint16).tobytes())


SHARD = ["data.vocab_size=500", "data.val_tokens=2048"]

#: (id, argv with {d} for the work directory and {cache} for the token cache, field named first)
CASES = [
    # --- training configs
    ("train: unknown key", ["train", "tokenz=1e6"], "tokenz"),
    ("train: negative budget", ["train", "tokens=-2e6"], "tokens"),
    ("train: zero budget", ["train", "tokens=0"], "tokens"),
    ("train: zero flops budget", ["train", "flops=0"], "flops"),
    ("train: negative tokens per parameter", ["train", "tokens_per_param=-20"], "tokens_per_param"),
    ("train: batch larger than the budget", ["train", "tokens=1000"], "tokens"),
    ("train: micro-batch of zero", ["train", "tokens=1e5", "micro_batch=0"], "micro_batch"),
    ("train: negative learning rate", ["train", "tokens=1e5", "optim.lr=-1"], "optim.lr"),
    ("train: sequence longer than the data", ["train", "tokens=2e6", "seq_len=1048576",
                                              "batch_tokens=1048576"], "seq_len"),
    ("train: missing checkpoint to resume from", ["train", "tokens=1e5", "resume={d}/nope/step_00000001.pt"],
     "{d}/nope/step_00000001.pt"),
    # --- training data
    ("train: empty corpus", ["train", "tokens=1e5", "data.source={d}/empty_corpus"], "data.source"),
    ("train: missing corpus", ["train", "tokens=1e5", "data.source={d}/no_such_dir"], "data.source"),
    ("train: .bin with a wrong magic number", ["train", "tokens=1e5", "data.source={d}/shards_bad_magic", *SHARD],
     "{d}/shards_bad_magic/train.bin"),
    ("train: .bin shorter than its header says", ["train", "tokens=1e5", "data.source={d}/shards_truncated",
                                                  *SHARD], "{d}/shards_truncated/train.bin"),
    ("train: token id outside the vocabulary", ["train", "tokens=1e5", "data.source={d}/shards_out_of_vocab",
                                                *SHARD], "data.vocab_size"),
    # --- analysis tables
    ("fit: wrong columns", ["fit", "{d}/wrong_columns.csv", "-o", "{d}/fit.json"], "columns"),
    ("fit: NaN loss", ["fit", "{d}/nan_loss.csv", "-o", "{d}/fit.json"], "loss"),
    ("fit: negative tokens", ["fit", "{d}/negative_tokens.csv", "-o", "{d}/fit.json"], "tokens"),
    ("fit: one model size", ["fit", "{d}/one_size.csv", "-o", "{d}/fit.json"], "params"),
    ("fit: all points at one budget", ["fit", "{d}/one_budget.csv", "-o", "{d}/fit.json"], "tokens"),
    ("fit: one budget, kaplan_d", ["fit", "{d}/one_budget.csv", "--law", "kaplan_d", "-o", "{d}/fit.json"],
     "tokens"),
    ("fit: header only", ["fit", "{d}/header_only.csv", "-o", "{d}/fit.json"], "{d}/header_only.csv"),
    ("fit: not a table", ["fit", "{d}/garbage.csv", "-o", "{d}/fit.json"], "{d}/garbage.csv"),
    ("fit: missing file", ["fit", "{d}/nope.csv", "-o", "{d}/fit.json"], "{d}/nope.csv"),
    ("fit: column mapped to nothing", ["fit", "{d}/good.csv", "--columns", "params=Model Size", "-o",
                                       "{d}/fit.json"], "columns"),
    ("fit: level outside (0, 1)", ["fit", "{d}/good.csv", "--level", "1.5", "-o", "{d}/fit.json"], "--level"),
    ("fit: prediction without tokens", ["fit", "{d}/good.csv", "--predict", "7e9", "-o", "{d}/fit.json"],
     "--predict"),
    ("fit: negative bootstrap", ["fit", "{d}/good.csv", "--bootstrap", "-5", "-o", "{d}/fit.json"], "--bootstrap"),
    ("curve: no learning rates", ["curve", "fit", "{d}/curve_no_lr.csv", "-o", "{d}/curve.json"], "lr"),
    ("extrapolate: wrong columns", ["extrapolate", "{d}/wrong_columns.csv"], "columns"),
    ("plot: one model size", ["plot", "{d}/one_size.csv", "-o", "{d}/fig.png"], "params"),
    ("report: all points at one budget", ["report", "{d}/one_budget.csv", "-o", "{d}/report"], "tokens"),
    # --- sweeps
    ("runs: missing sweep", ["runs", "{d}/no_sweep"], "{d}/no_sweep"),
    ("runs: unknown status", ["runs", "{d}/sweep", "--status", "finished"], "--status"),
    ("sweep: unknown experiment", ["sweep", "nosuch", "--out", "{d}/new_sweep"], "EXPERIMENT"),
    ("sweep: misspelt key", ["sweep", "demo", "tokenz=1", "--dry-run", "--out", "{d}/new_sweep"], "overrides"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input")
    _write_inputs(d)
    return d


@pytest.mark.parametrize("argv, field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_field_with_exit_2_and_no_output(work, cache, capsys, argv, field):
    before = mtimes(work)
    cmd = argv[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = cli_main(bad_input_argv(argv, work, cache))
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    head = f"scaling {cmd}: error: {field.format(d=work)}"
    assert lines[0].startswith(head), (lines[0], head)
    assert "(fix: " in lines[0] and "Traceback" not in err
    shown = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))
             and not issubclass(w.category, DeprecationWarning)]
    assert not shown, [str(w.message) for w in shown]  # they would be more lines on stderr
    assert mtimes(work) == before  # no partial output, no run directory


@pytest.mark.parametrize("argv, field", [
    (["train", "model=nano", "tokens=-5"], "tokens"),
    (["fit", "{d}/one_budget.csv", "-o", "{d}/fit.json"], "tokens"),
], ids=["train", "fit"])
def test_the_same_in_a_real_process(work, argv, field, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [a.format(d=work) for a in argv]
    if argv[0] == "train":
        argv.append(f"out={tmp_path}/run")
    proc = subprocess.run([sys.executable, "-m", "scaling", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"scaling {argv[0]}: error: {field}: ")
    assert proc.stdout == "" and not any(tmp_path.iterdir()) and not (work / "fit.json").exists()

"""Faults in the trainer: kills at exact moments (inside a checkpoint write too), a
pre-emption signal during a write, divergence diagnostics, an unwritable or full disk,
and a checkpoint from another configuration.

Kills are placed with the ``SCALING_FAULT`` test hook (``scaling.checkpoint.fault_point``):
the child process signals itself at a named point of a given step, so nothing depends
on timing. Every killed run is then resumed and must match an uninterrupted run bit for
bit, with each step in ``metrics.jsonl`` exactly once.
"""
import errno
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.common import records
from analysis.common.errors import CheckpointError, ConfigError, DataError, DivergenceError, RecordError
from scaling import checkpoint as ckpt
from scaling.app.cli import main as cli_main
from scaling.app.cli.train import EXIT_RESUMABLE
from scaling.config import from_overrides
from scaling.train.diagnostics import DIVERGED_FILE, NONFINITE_FILE
from scaling.train.run import train
from trainer_testing import losses, poison, tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
STEPS, EVERY = 60, 20  # 1,024-token steps; a checkpoint every 20 and at the end
# on the CPU everywhere: bit-for-bit comparisons need deterministic kernels, which CUDA's are not by default
EXTRA = (f"tokens={STEPS * 1024}", f"ckpt_every_tokens={EVERY * 1024}", "device=cpu")


@pytest.fixture(scope="module")
def reference(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "r"
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    return out


def _run_child(cache, out, fault, *extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SCALING_FAULT=fault)
    return subprocess.run([sys.executable, "-m", "scaling", "train", *tiny_overrides(cache, out, *EXTRA, *extra)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _step(path: Path) -> int:
    return int(path.name.split("_")[1].split(".")[0])


def _logged_steps(out) -> list:
    return [r["step"] for r in records.read_metrics(out)]


def _assert_matches_reference(out, reference):
    assert _logged_steps(out) == list(range(1, STEPS + 1))  # none lost, none twice
    assert losses(out) == losses(reference)                  # bit for bit
    assert losses(out, "lr") == losses(reference, "lr")
    s = records.read_summary(out)
    assert s["status"] == "completed"
    assert s["final_val_loss"] == records.read_summary(reference)["final_val_loss"]
    assert not list(ckpt.checkpoint_dir(out).glob(".*.tmp"))  # nothing half-written is left


@pytest.mark.parametrize("fault, extra, logged, resume_at", [
    ("step@33", (), 33, 20),            # between checkpoints
    ("payload@40", (), 40, 20),         # half-way through writing the payload
    ("manifest@60", (), 60, 40),        # the final payload is in place, its manifest is not
    ("prune@40", ("keep_checkpoints=1",), 40, 40),  # new checkpoint complete, old one not yet pruned
])
def test_sigkill_anywhere_loses_at_most_one_interval_and_resumes_exactly(cache, reference, tmp_path, fault,
                                                                         extra, logged, resume_at):
    out = tmp_path / "r"
    proc = _run_child(cache, out, fault, *extra)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert records.read_summary(out)["status"] == "running"  # it had no chance to say more
    assert _logged_steps(out) == list(range(1, logged + 1))
    point, step = fault.split("@")
    names = {p.name for p in ckpt.checkpoint_dir(out).iterdir()}
    if point == "payload":  # the torn temporary file is there, under a name nothing loads
        assert any(n.startswith(f".step_{int(step):08d}.pt.") and n.endswith(".tmp") for n in names)
    if point == "manifest":
        assert f"step_{int(step):08d}.pt" in names and f"step_{int(step):08d}.json" not in names
    if point == "prune":  # keep=1, yet both are on disk: at no moment is there no valid checkpoint
        assert {"step_00000020.json", "step_00000040.json"} <= names
    with pytest.warns(UserWarning, match="skipping checkpoint") if point == "manifest" else _no_warning():
        found = ckpt.latest_valid(out)
    assert found is not None and found[1]["step"] == resume_at
    assert logged - resume_at <= EVERY  # the promise: at most one checkpoint interval lost

    with pytest.warns(UserWarning, match="skipping checkpoint") if point == "manifest" else _no_warning():
        train(from_overrides(tiny_overrides(cache, out, *EXTRA, *extra)))
    _assert_matches_reference(out, reference)
    if point == "prune":
        assert [_step(p) for p in ckpt.list_checkpoints(out)] == [60]


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_sigterm_during_a_checkpoint_write_finishes_it_and_exits_resumable(cache, reference, tmp_path):
    out = tmp_path / "r"
    proc = _run_child(cache, out, "payload@40:TERM")
    assert proc.returncode == EXIT_RESUMABLE, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    s = records.read_summary(out)
    assert s["status"] == "resumable" and s["steps_trained"] == 40
    assert [_step(p) for p in ckpt.list_checkpoints(out)] == [20, 40]
    manifest = json.loads((ckpt.checkpoint_dir(out) / "step_00000040.json").read_text())
    assert manifest["bytes"] == (ckpt.checkpoint_dir(out) / "step_00000040.pt").stat().st_size
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    _assert_matches_reference(out, reference)


def test_truncated_and_bit_flipped_checkpoints_are_reported_and_skipped(cache, tmp_path):
    out = tmp_path / "r"
    train(from_overrides(tiny_overrides(cache, out, "tokens=8192", "ckpt_every_tokens=2048",
                                        "keep_checkpoints=3", "eval_count=1")))
    older, middle, newest = ckpt.list_checkpoints(out)  # steps 4, 6, 8
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    raw = bytearray(middle.read_bytes())
    raw[len(raw) // 3] ^= 0x01                                             # one bit flipped
    middle.write_bytes(bytes(raw))
    with pytest.warns(UserWarning) as seen:
        path, state = ckpt.latest_valid(out)
    messages = [str(w.message) for w in seen]
    assert any("truncated" in m and newest.name in m for m in messages)
    assert any("sha256" in m and middle.name in m for m in messages)
    assert path == older and state["step"] == 4
    with pytest.raises(CheckpointError, match="truncated"):
        ckpt.load_checkpoint(newest)


# --------------------------------------------------------------------------- divergence

def _nan_gradient(monkeypatch):
    """Finite loss, non-finite gradients from the first step on: d sqrt(u)/du at u = 0 is inf."""
    from scaling import model as model_mod
    from scaling.kernels import Ops, get_ops

    real = get_ops("eager")

    def lce(h, w, t, **kw):
        return real.linear_cross_entropy(h, w, t, **kw) + torch.sqrt(h.sum() * 0.0)

    monkeypatch.setattr(model_mod, "get_ops", lambda name: Ops("nan-grad", real.rms_norm, real.swiglu,
                                                                real.apply_rope, lce))


def test_divergence_stops_naming_the_step_and_saves_a_diagnostic(cache, tmp_path, monkeypatch):
    poison(monkeypatch, range(6, 100))
    out = tmp_path / "r"
    over = tiny_overrides(cache, out, "tokens=10240", "eval_count=1", "ckpt_every_tokens=4096")
    with pytest.raises(DivergenceError, match=r"^step: non-finite loss at step 6 .*diverged\.json"):
        train(from_overrides(over))
    s = records.read_summary(out)
    assert s["status"] == "diverged" and "step 6" in s["error"]
    d = json.loads((out / DIVERGED_FILE).read_text())
    assert d["step"] == 6 and d["what"] == "loss" and d["loss"] == "nan"
    assert [r["step"] for r in d["recent_rows"]] == [1, 2, 3, 4, 5]
    assert d["lr"] > 0 and d["on_nonfinite"] == "stop"
    assert d["last_checkpoint"].endswith("step_00000004.pt")  # where a rerun with a lower lr could start
    # the record names the batch well enough to draw it again
    from scaling.data.corpus import load_corpus

    cfg = from_overrides(over)
    batch = load_corpus(cfg.data).train.sample(d["batch"]["seed"], d["batch"]["step"], d["batch"]["sequences"],
                                               d["batch"]["seq_len"])
    assert hashlib.sha256(batch.tobytes()).hexdigest() == d["batch"]["sha256"]


def test_cli_divergence_is_one_line_with_exit_2(cache, tmp_path, monkeypatch, capsys):
    poison(monkeypatch, range(3, 100))
    rc = cli_main(["train", *tiny_overrides(cache, tmp_path / "r", "tokens=4096", "eval_count=1")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("scaling train: error: step: non-finite loss at step 3")


def test_nonfinite_gradient_with_finite_loss_is_caught(cache, tmp_path, monkeypatch):
    _nan_gradient(monkeypatch)
    with pytest.raises(DivergenceError, match="non-finite gradient norm at step 1 "):
        train(from_overrides(tiny_overrides(cache, tmp_path / "r", "tokens=4096", "eval_count=1")))
    d = json.loads((tmp_path / "r" / DIVERGED_FILE).read_text())
    assert d["what"] == "gradient norm" and math.isfinite(d["loss"]) and d["grad_norm"] == "nan"
    assert d["nonfinite_grads"]["count"] > 0 and "tok_emb.weight" in d["nonfinite_grads"]["names"]
    assert d["last_checkpoint"] is None


def test_skip_mode_records_each_skipped_step_once(cache, tmp_path, monkeypatch):
    poison(monkeypatch, {4, 5})
    s = train(from_overrides(tiny_overrides(cache, tmp_path / "r", "tokens=8192", "eval_count=1",
                                            "on_nonfinite=skip")))
    assert s["status"] == "completed" and s["skipped_steps"] == 2
    rows = list(records.iter_jsonl(tmp_path / "r" / NONFINITE_FILE))
    assert [(r["step"], r["what"]) for r in rows] == [(4, "loss"), (5, "loss")]
    assert not (tmp_path / "r" / DIVERGED_FILE).exists()
    # the skipped steps' rows are still logged: the curve shows them, with their NaN as null
    by_step = {r["step"]: r for r in records.read_metrics(tmp_path / "r")}
    assert by_step[4]["train_loss"] is None and by_step[6]["train_loss"] > 0


def test_nonfinite_validation_loss_writes_the_diagnostic(cache, tmp_path, monkeypatch):
    poison(monkeypatch, {9})
    with pytest.raises(DivergenceError, match="validation loss after step 8"):
        train(from_overrides(tiny_overrides(cache, tmp_path / "r", "tokens=8192", "eval_count=1",
                                            "on_nonfinite=skip")))
    d = json.loads((tmp_path / "r" / DIVERGED_FILE).read_text())
    assert d["what"] == "validation loss" and d["step"] == 8
    assert d["nonfinite_params"]["count"] == 0  # the weights are finite: the blow-up is in the evaluation
    assert records.read_summary(tmp_path / "r")["status"] == "diverged"


# --------------------------------------------------------------------------- disks

def test_unwritable_out_fails_before_any_work_and_leaves_nothing(cache, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    rc = cli_main(["train", *tiny_overrides(cache, blocker / "run", "tokens=4096")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "error: out: cannot write the run record" in err
    assert blocker.read_text() == "not a directory"
    rc = cli_main(["train", *tiny_overrides(cache, blocker, "tokens=4096")])
    assert rc == 2 and "is a file, not a directory" in capsys.readouterr().err


def test_permission_denied_is_named_and_created_parents_are_removed(cache, tmp_path, monkeypatch):
    # Tests may run as root, for whom permission bits do not apply: refuse the probe write instead.
    real = Path.write_bytes

    def refuse(self, data):
        if self.name.startswith(".write-probe-"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(ConfigError, match="^out: cannot write the run record .*Permission denied"):
        train(from_overrides(tiny_overrides(cache, tmp_path / "new" / "deep" / "run", "tokens=4096")))
    assert not (tmp_path / "new").exists()


def test_too_little_disk_space_fails_before_training(cache, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))  # 1 MiB free
    with pytest.raises(ConfigError, match=r"^out: needs about .* free for 3 checkpoint\(s\)") as e:
        train(from_overrides(tiny_overrides(cache, tmp_path / "r", "tokens=4096")))
    assert "keep_checkpoints" in e.value.fix
    assert not (tmp_path / "r").exists()  # not even the directory


def _fail_after(monkeypatch, target, attr, calls: int, partial: bool):
    """Make ``target.attr`` fail with ENOSPC from its ``calls``-th call on, after writing half."""
    real = getattr(target, attr)
    n = {"calls": 0}

    def full(*args, **kwargs):
        n["calls"] += 1
        if n["calls"] < calls:
            return real(*args, **kwargs)
        if partial:
            self, row = args[0], args[1]
            line = json.dumps(row)
            self._f.write(line[: len(line) // 2])  # a torn line, as a full disk leaves it
            self._f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(target, attr, full)


def test_disk_full_while_checkpointing_keeps_every_record_readable(cache, reference, tmp_path, monkeypatch,
                                                                   capsys):
    out = tmp_path / "r"
    class FullDisk:  # the payload's file, failing part-way as a full disk does (at step 40)
        def __init__(self, f, step):
            self.f, self.step = f, step

        def write(self, b):
            if self.step == 40 and self.f.tell() > 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

    real_init = ckpt._HashingWriter.__init__
    monkeypatch.setattr(ckpt._HashingWriter, "__init__",
                        lambda self, f, step: real_init(self, FullDisk(f, step), step))
    rc = cli_main(["train", *tiny_overrides(cache, out, *EXTRA)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "out: could not write the run record" in err and "No space left on device at step 40" in err
    s = records.read_summary(out)
    assert s["status"] == "failed" and "No space left" in s["error"]
    assert [_step(p) for p in ckpt.list_checkpoints(out)] == [20]  # the one before is intact
    assert ckpt.latest_valid(out)[1]["step"] == 20
    assert not list(ckpt.checkpoint_dir(out).glob(".*.tmp"))
    assert _logged_steps(out) == list(range(1, 41))
    monkeypatch.undo()  # space freed: the same command resumes
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    _assert_matches_reference(out, reference)


def test_disk_full_while_logging_leaves_a_torn_row_that_resume_drops(cache, reference, tmp_path, monkeypatch):
    out = tmp_path / "r"
    _fail_after(monkeypatch, records.JsonlAppender, "append", calls=45, partial=True)
    with pytest.raises(RecordError, match="^out: could not write the run record: No space left"):
        train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    with pytest.warns(UserWarning, match="torn last line"):
        assert _logged_steps(out) == list(range(1, 45))
    assert records.read_summary(out)["status"] == "failed"
    monkeypatch.undo()
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    _assert_matches_reference(out, reference)


def test_unwritable_token_cache_is_named(tmp_path):
    blocker = tmp_path / "cache_is_a_file"
    blocker.write_text("")
    with pytest.raises(DataError, match="^data.cache_dir: cannot write the token cache"):
        train(from_overrides(tiny_overrides(blocker, tmp_path / "r", "tokens=4096")))
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- configuration

def test_checkpoint_from_another_config_names_the_key(cache, reference, tmp_path):
    src = ckpt.list_checkpoints(reference)[0]
    with pytest.raises(CheckpointError) as e:
        train(from_overrides(tiny_overrides(cache, tmp_path / "r", *EXTRA, "optim.lr=5e-3", f"resume={src}")))
    assert e.value.field == "optim.lr" and "optim.lr=0.01" in str(e.value)


def test_sequence_longer_than_the_context_is_an_input_error():
    from analysis.common.errors import InputError
    from scaling.config import ModelArgs
    from scaling.model import Transformer

    m = Transformer(ModelArgs(32, 1, 2, 2, 64, 256, 16))
    m(torch.zeros(1, 16, dtype=torch.long))  # at the context: fine
    with pytest.raises(InputError, match="^seq_len: a sequence of 17 tokens exceeds the model's context of 16"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_token_id_beyond_the_vocabulary_mid_shard_is_caught_at_the_batch(tmp_path):
    """The loader checks the first and last million tokens of each shard; a bad stretch in
    the middle of a large one is caught by the per-batch check, naming the step."""
    from scaling.data.corpus import write_shard

    rng = np.random.default_rng(0)
    toks = rng.integers(0, 500, 2_500_000)
    write_shard(tmp_path / "d_train.bin", toks, 500, "llm.c")
    write_shard(tmp_path / "d_val.bin", toks[:20000], 500, "llm.c")
    raw = bytearray((tmp_path / "d_train.bin").read_bytes())
    body = np.frombuffer(raw, dtype=np.uint16, offset=1024)
    body[1_100_000:1_450_000] = 777  # out of range, where the up-front check does not look
    (tmp_path / "d_train.bin").write_bytes(bytes(raw))
    over = ["model=nano", "arch.d_model=32", "arch.n_heads=2", "seq_len=64", "batch_tokens=1024", "threads=1",
            "tokens=4096", "progress=none", "data.vocab_size=500", "data.val_tokens=2048",
            f"data.source={tmp_path}", f"out={tmp_path / 'r'}"]
    with pytest.raises(DataError, match=r"^data.vocab_size: the batch of step 1 holds token id 777, outside "
                                        r"the vocabulary of 500"):
        train(from_overrides(over))
    s = records.read_summary(tmp_path / "r")
    assert s["status"] == "failed" and "777" in s["error"]

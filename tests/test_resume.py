"""Kill a run mid-way (SIGKILL, or SIGTERM as SLURM pre-emption sends), resume it, and get
exactly the losses of an uninterrupted run with a metrics.jsonl holding each step once."""
import signal

import pytest

from analysis.common import records
from scaling import checkpoint as ckpt
from scaling.app.cli.train import EXIT_RESUMABLE
from scaling.config import from_overrides
from scaling.train.run import train
from trainer_testing import losses, start_train, tiny_overrides, wait_for_rows

STEPS = 150
EXTRA = (f"tokens={STEPS * 1024}", "ckpt_every_tokens=20480", "schedule.kind=wsd",
         "schedule.branches=[51200]")  # a branch forks at step 40 and ends at 50


@pytest.fixture(scope="module")
def reference(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "r"
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    return out


def _check_resumed_matches(out, reference):
    rows = records.read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # none missing, none twice
    assert losses(out) == losses(reference)                         # bit for bit
    assert losses(out, "lr") == losses(reference, "lr")
    ref_branches = [(b["step"], b["val_loss"]) for b in records.read_branches(reference)]
    assert [(b["step"], b["val_loss"]) for b in records.read_branches(out)] == ref_branches
    s = records.read_summary(out)
    assert s["status"] == "completed"
    assert s["final_val_loss"] == records.read_summary(reference)["final_val_loss"]


def test_resume_after_sigkill_matches_the_uninterrupted_run(cache, reference, tmp_path):
    out = tmp_path / "killed"
    proc = start_train(cache, out, EXTRA)
    wait_for_rows(proc, out, 70)  # past the checkpoints at 20, 40 and 60
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert records.read_summary(out)["status"] == "running"  # it never got to say otherwise
    newest = max(int(p.stem.split("_")[1]) for p in ckpt.list_checkpoints(out))
    logged = (out / records.METRICS_FILE).read_text().count("\n")
    assert newest >= 60 and logged >= newest  # rows after the checkpoint, if any, are dropped on resume
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    _check_resumed_matches(out, reference)


def test_sigterm_checkpoints_exits_resumable_and_resumes_exactly(cache, reference, tmp_path):
    out = tmp_path / "preempted"
    proc = start_train(cache, out, EXTRA)
    wait_for_rows(proc, out, 30)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_RESUMABLE, err[-2000:]
    s = records.read_summary(out)
    assert s["status"] == "resumable" and "Traceback" not in err
    stopped = s["steps_trained"]
    assert 30 <= stopped < STEPS
    assert int(ckpt.list_checkpoints(out)[-1].stem.split("_")[1]) == stopped
    assert [r["step"] for r in records.read_metrics(out)] == list(range(1, stopped + 1))
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    _check_resumed_matches(out, reference)


def test_resume_from_an_explicit_checkpoint_path(cache, reference, tmp_path):
    out = tmp_path / "explicit"
    short = tiny_overrides(cache, out, *EXTRA)
    # reuse the reference's step-140 checkpoint in a fresh directory
    src = [p for p in ckpt.list_checkpoints(reference) if p.stem.endswith("140")]
    assert src, "the reference run keeps its last two checkpoints (140 and 150)"
    train(from_overrides(short + [f"resume={src[0]}"]))
    rows = records.read_metrics(out)
    assert [r["step"] for r in rows] == list(range(141, STEPS + 1))
    assert losses(out) == losses(reference)[140:]


def test_kill_between_final_checkpoint_and_summary(cache, reference, tmp_path):
    """The last checkpoint is written before the summary says 'completed': a kill in that
    gap resumes at the end, measures the final loss again and completes."""
    import json
    import shutil

    out = tmp_path / "gap"
    shutil.copytree(reference, out)
    s = json.loads((out / records.SUMMARY_FILE).read_text())
    s.update(status="running", final_val_loss=None)
    (out / records.SUMMARY_FILE).write_text(json.dumps(s))
    done = train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    assert done["status"] == "completed"
    assert done["final_val_loss"] == records.read_summary(reference)["final_val_loss"]
    assert [r["step"] for r in records.read_metrics(out)] == list(range(1, STEPS + 1))


def test_damaged_newest_checkpoint_resumes_from_the_one_before(cache, reference, tmp_path):
    """A run whose last checkpoint is damaged goes back to the previous one, drops the
    metrics rows logged after it, and relogs them once with the same values."""
    import json
    import shutil

    out = tmp_path / "damaged"
    shutil.copytree(reference, out)
    newest = ckpt.list_checkpoints(out)[-1]  # step 150; the one before is step 140
    newest.write_bytes(newest.read_bytes()[:-100])
    s = json.loads((out / records.SUMMARY_FILE).read_text())
    s.update(status="running", final_val_loss=None)
    (out / records.SUMMARY_FILE).write_text(json.dumps(s))
    assert len(records.read_metrics(out)) == STEPS
    with pytest.warns(UserWarning, match="skipping checkpoint"):
        train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    _check_resumed_matches(out, reference)


def test_a_metrics_record_cut_short_before_the_checkpoint_is_reported_on_resume(cache, tmp_path, caplog):
    # the record lost rows the checkpoint saw written: they cannot be logged again, and the
    # resume says so (log line and summary.json) instead of leaving a silent gap
    import logging

    out = tmp_path / "cut"
    proc = start_train(cache, out, EXTRA)
    wait_for_rows(proc, out, 30)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == EXIT_RESUMABLE
    stopped = records.read_summary(out)["steps_trained"]
    path = out / records.METRICS_FILE
    lines = path.read_text().splitlines(keepends=True)
    keep = int(0.7 * len(lines))
    path.write_text("".join(lines[:keep]))
    with caplog.at_level(logging.WARNING):
        train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    lost = stopped - keep
    assert any(f"{lost} row(s) were lost" in r.getMessage() for r in caplog.records), caplog.text[-2000:]
    s = records.read_summary(out)
    assert s["status"] == "completed" and s["lost_metric_rows"] == lost
    steps = [r["step"] for r in records.read_metrics(out)]
    assert steps == list(range(1, keep + 1)) + list(range(stopped + 1, STEPS + 1))  # the gap, and nothing twice

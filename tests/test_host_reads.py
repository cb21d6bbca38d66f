"""The loop reads nothing back from the device between log steps.

A read of a device tensor (``.item()``, ``float()``, ``bool()``, ``.tolist()``) makes the
host wait for every kernel queued so far, so the GPU idles while the next step is
prepared. On CPU there is no device, but every such read still passes through the
dispatcher as ``aten._local_scalar_dense`` (``.tolist()`` and ``.numpy()`` do not, so
they are counted by wrapping them); a TorchDispatchMode counts them per training step.
"""
import hashlib
import json

import pytest

from analysis.common import records
from analysis.common.errors import DivergenceError
from scaling.config import from_overrides
from scaling.train.diagnostics import DIVERGED_FILE
from scaling.train.run import train
from trainer_testing import counted_run, poison, tiny_overrides


@pytest.mark.parametrize("extra", [(), ("activation_checkpointing=true",)], ids=["plain", "checkpointed"])
def test_no_host_reads_between_log_steps(cache, tmp_path, monkeypatch, extra):
    over = tiny_overrides(cache, tmp_path / "r", "tokens=24576", "log_every=5", "eval_count=2",
                          "ckpt_every_tokens=8192", "schedule.kind=wsd", "schedule.branches=[14336]", *extra)
    reads, s, plan = counted_run(monkeypatch, over)
    assert s["status"] == "completed" and plan.total_steps == 24
    forks = {f for f, _ in plan.branches}
    synced = ({t for t in range(1, 25) if t % 5 == 0} | set(plan.eval_steps) | {24}
              | {t for t in range(1, 25) if t % plan.ckpt_every == 0} | forks)
    quiet = set(range(1, 25)) - synced
    assert len(quiet) >= 12  # most steps are between log steps
    assert {t: n for t, n in reads.items() if t in quiet} == {}
    # the counter does see the reads: every log step reads its loss back
    assert all(reads.get(t, 0) >= 1 for t in range(5, 25, 5))


def test_skip_mode_reads_once_a_step(cache, tmp_path, monkeypatch):
    """on_nonfinite=skip decides before each update, so it is the one mode that reads every step."""
    over = tiny_overrides(cache, tmp_path / "r", "tokens=8192", "log_every=4", "eval_count=1",
                          "on_nonfinite=skip")
    reads, s, _ = counted_run(monkeypatch, over)
    assert s["status"] == "completed"
    assert all(reads.get(t, 0) >= 1 for t in range(1, 9))


def test_a_late_read_still_names_the_first_bad_step(cache, tmp_path, monkeypatch):
    """NaN from step 6 on, read first at step 8 (log_every=4): the diagnostic is step 6's."""
    poison(monkeypatch, range(6, 100))
    out = tmp_path / "r"
    over = tiny_overrides(cache, out, "tokens=12288", "log_every=4", "eval_count=1", "ckpt_every_tokens=8192")
    with pytest.raises(DivergenceError, match=r"^step: non-finite loss at step 6 .*diverged\.json"):
        train(from_overrides(over))
    s = records.read_summary(out)
    assert s["status"] == "diverged" and s["steps_trained"] == 6 and "step 6" in s["error"]
    assert [r["step"] for r in records.read_metrics(out)] == [4]
    d = json.loads((out / DIVERGED_FILE).read_text())
    assert d["step"] == 6 and d["what"] == "loss" and d["loss"] == "nan" and d["lr"] > 0
    assert d["last_checkpoint"] is None  # step 8's checkpoint would hold the broken weights
    assert [r["step"] for r in d["recent_rows"]] == [4]
    from scaling.data.corpus import load_corpus

    batch = load_corpus(from_overrides(over).data).train.sample(0, 6, d["batch"]["sequences"], 64)
    assert hashlib.sha256(batch.tobytes()).hexdigest() == d["batch"]["sha256"]


def test_the_benchmarks_baseline_loop_trains_the_same_bits(cache, tmp_path):
    """Trainer(prefetch=False, read_every_step=True), the loop as it was, which
    ``scaling.app.bench train`` compares with, logs exactly the rows of the default loop."""
    from scaling import distributed as D
    from scaling.train.run import isolated, resolve_run
    from scaling.train.trainer import Trainer

    got = {}
    for name, kw in (("old", {"prefetch": False, "read_every_step": True}), ("new", {})):
        out = tmp_path / name
        cfg = from_overrides(tiny_overrides(cache, out, "tokens=12288", "log_every=3", "micro_batch=4",
                                            "schedule.kind=wsd", "schedule.branches=[8192]"))
        with isolated(cfg):
            world = D.World()
            got[name] = Trainer(cfg, resolve_run(cfg, world, out), world, **kw).run()
    assert got["old"]["status"] == got["new"]["status"] == "completed"
    keep = ("step", "train_loss", "grad_norm", "val_loss", "lr")
    old, new = ([{k: r.get(k) for k in keep} for r in records.read_metrics(tmp_path / n)] for n in ("old", "new"))
    assert old == new and len(old) > 4  # every 3rd step and the evaluations
    assert records.read_branches(tmp_path / "old") == records.read_branches(tmp_path / "new")

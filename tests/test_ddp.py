"""Two CPU processes under torchrun (gloo) train the same loss curve as one process with
the same global batch (there split into two accumulated micro-batches)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.common import records
from scaling.config import from_overrides
from scaling.train.run import train
from trainer_testing import losses, tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
EXTRA = ("tokens=20480", "schedule.kind=wsd", "schedule.branches=[10240]", "ckpt_every_tokens=10240")


@pytest.mark.distributed
@pytest.mark.parametrize("limited,two_only", [((), ()), (("data.unique_tokens=8192",), ()),
                                              ((), ("activation_checkpointing=true",))],
                         ids=["all-data", "repeated-data", "checkpointed"])
def test_two_process_ddp_matches_one_process(tmp_path, limited, two_only):
    """Also with repeated data (data.unique_tokens: 2.5 epochs over 8,192 tokens): every rank
    cuts the same prefix, so the ranks' shares still make up the single process's batch.
    And with activation checkpointing under DDP against a single process without it."""
    cache = tmp_path / "cache"
    one = tmp_path / "one"
    extra = EXTRA + limited
    # 16 sequences per step: one process does 2 x 8, two processes 1 x 8 each
    train(from_overrides(tiny_overrides(cache, one, *extra, "micro_batch=8")))

    two = tmp_path / "two"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "scaling", "train", *tiny_overrides(cache, two, *extra, *two_only)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run record:") == 1  # rank 0 alone reports and writes

    s1, s2 = records.read_summary(one), records.read_summary(two)
    assert s2["world_size"] == 2 and s2["status"] == "completed"
    assert [r["step"] for r in records.read_metrics(two)] == list(range(1, 21))
    assert losses(two) == pytest.approx(losses(one), rel=1e-5)
    assert s2["final_val_loss"] == pytest.approx(s1["final_val_loss"], rel=1e-5)
    b1, b2 = records.read_branches(one), records.read_branches(two)
    assert [b["step"] for b in b2] == [10]
    assert b2[0]["val_loss"] == pytest.approx(b1[0]["val_loss"], rel=1e-5)
    # the training itself differed: the losses are not all equal to each other
    assert len(set(losses(two))) > 10
    assert s2.get("unique_tokens") == s1.get("unique_tokens")

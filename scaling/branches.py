"""WSD cooldown branches: extra (N, D, loss) points from one warmup-stable-decay run.

A branch forks from the stable phase after step ``fork``, cools down to step ``end``
on the main run's own batches for those steps and is evaluated there: Hägele et al.
(2024) find that such a cooldown matches a separate run of that length, so one run
gives a point per branch. The state is restored afterwards, so the main run goes on exactly
as if the branch had not happened. Branches run right after the main run's step
``fork``, before that step's checkpoint, so a checkpoint covers every branch forked at
or before its step and a resumed run re-logs none.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from analysis.common import records
from scaling import checkpoint as ckpt

if TYPE_CHECKING:
    from scaling.progress import Reporter
    from scaling.trainer import Trainer


def by_fork(branches) -> dict[int, list[int]]:
    """``{fork_step: [end_step, ...]}`` of the plan's ``(fork, end)`` pairs."""
    out: dict[int, list[int]] = {}
    for fork, end in branches:
        out.setdefault(fork, []).append(end)
    return out


def run_branch(t: "Trainer", fork: int, end: int) -> dict:
    """Train the cooldown from the state after ``fork`` to ``end``, evaluate, put the
    state back; the branch's row for ``branches.jsonl``."""
    saved = (copy.deepcopy(t.raw.state_dict()), copy.deepcopy(t.opt.state_dict()), ckpt.rng_state())
    skipped = t.skipped_steps
    t.in_branch = (fork, end)
    try:
        loss = None
        for s in range(fork + 1, end + 1):
            loss, _ = t.train_step(s, t.lr(s, branch=(fork, end)))
        t.check_finite()
        val = t.evaluate(end)
        loss = t.global_mean(loss)
    finally:
        t.in_branch = None
        t.raw.load_state_dict(saved[0])
        t.opt.load_state_dict(saved[1])
        ckpt.set_rng_state(saved[2])
        t.skipped_steps = skipped
    tokens = end * t.plan.batch_tokens
    row = {"tokens": tokens, "step": end, "fork_step": fork,
           "flops_6n": tokens * t.plan.flops_6n_per_token, "flops": tokens * t.plan.flops_per_token,
           "val_loss": val, "train_loss": loss}
    if t.val_bytes_per_token:
        row["val_bpb"] = t.bits_per_byte(val)
    return row


def record_branch(t: "Trainer", b: dict, reporter: "Reporter") -> None:
    """Keep a finished branch: in the summary, in ``branches.jsonl`` and on the progress line."""
    t.branch_rows.append(b)
    if t.is_main:
        with records.JsonlAppender(t.run_dir / records.BRANCHES_FILE) as f:
            f.append(b)
    reporter.message(f"branch {b['fork_step']}->{b['step']}: {b['tokens']:,} tokens, val {b['val_loss']:.4f}")
    t.write_summary("running", t.step)

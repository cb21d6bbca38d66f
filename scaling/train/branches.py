"""WSD cooldown branches: extra (N, D, loss) points from one warmup-stable-decay run.

A branch forks from the stable phase after step ``fork``, cools down to step ``end``
on the main run's own batches for those steps and is evaluated there: Hägele et al.
(2024) find that such a cooldown matches a separate run of that length, so one run
gives a point per branch. The state is restored afterwards, so the main run goes on exactly
as if the branch had not happened. Branches run right after the main run's step
``fork``, before that step's checkpoint, so a checkpoint covers every branch forked at
or before its step and a resumed run re-logs none.

:class:`Branches` is this module's state: the branches done (checkpointed), the one
training now, and putting the run's state back after one. The trainer trains the
branch's steps with its own ``train_step`` inside :meth:`Branches.forked`.
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Iterator, Optional

import torch

from analysis.common import records
from scaling import checkpoint as ckpt
from scaling.config import Plan


def by_fork(branches) -> dict[int, list[int]]:
    """``{fork_step: [end_step, ...]}`` of the plan's ``(fork, end)`` pairs."""
    out: dict[int, list[int]] = {}
    for fork, end in branches:
        out.setdefault(fork, []).append(end)
    return out


class Branches:
    """The WSD cooldown branches of one run: which fork at each step, the rows of those
    done (checkpointed: :meth:`state_dict` / :meth:`load_state_dict`) and the ``(fork,
    end)`` of the one training now (``active``, None on the main run). Rank 0 writes
    ``branches.jsonl``."""

    def __init__(self, plan: Plan, run_dir: Path, is_main: bool):
        self.plan, self.run_dir, self.is_main = plan, Path(run_dir), is_main
        self.ends_by_fork = by_fork(plan.branches)
        self.rows: list[dict] = []
        self.active: Optional[tuple] = None

    def forks_at(self, step: int) -> bool:
        """Whether some branch forks after ``step`` (done or not)."""
        return step in self.ends_by_fork

    def due(self, step: int) -> list[int]:
        """The end steps of the branches forking after ``step`` that are not done yet."""
        done = {(b["fork_step"], b["step"]) for b in self.rows}
        return [end for end in self.ends_by_fork.get(step, []) if (step, end) not in done]

    @contextlib.contextmanager
    def forked(self, fork: int, end: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               *others: ckpt.Stateful) -> Iterator[None]:
        """Train the branch ``fork`` -> ``end`` inside: afterwards, even after an error, the
        model, the optimizer, every RNG and ``others`` are as they were at the fork, so
        the main run goes on as if the branch had not happened."""
        saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), ckpt.rng_state(),
                 [copy.deepcopy(o.state_dict()) for o in others])
        self.active = (fork, end)
        try:
            yield
        finally:
            self.active = None
            model.load_state_dict(saved[0])
            optimizer.load_state_dict(saved[1])
            ckpt.set_rng_state(saved[2])
            for o, state in zip(others, saved[3]):
                o.load_state_dict(state)

    def row(self, fork: int, end: int, val_loss: float, train_loss: Optional[float],
            val_bytes_per_token: Optional[float]) -> dict:
        """The ``branches.jsonl`` row of a finished branch, with bits per byte where the
        validation set's bytes per token are known."""
        tokens = end * self.plan.batch_tokens
        row = {"tokens": tokens, "step": end, "fork_step": fork,
               "flops_6n": tokens * self.plan.flops_6n_per_token, "flops": tokens * self.plan.flops_per_token,
               "val_loss": val_loss, "train_loss": train_loss}
        if val_bytes_per_token:
            row["val_bpb"] = records.bits_per_byte(val_loss, val_bytes_per_token)
        return row

    def record(self, row: dict) -> None:
        """Keep a finished branch: in the summary's rows and in ``branches.jsonl``."""
        self.rows.append(row)
        if self.is_main:
            with records.JsonlAppender(self.run_dir / records.BRANCHES_FILE) as f:
                f.append(row)

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the rows of the branches done."""
        return {"branches": list(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["branches"])

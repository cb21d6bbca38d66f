"""Resuming: load the checkpoint to continue from and trim the record back to it.

A checkpoint holds the model, the optimizer, every RNG state, the wall time, the WSD
branches done so far and the counters the summary reports, all as of the end of its
step. The record files are cut back to that step, so a resumed run logs exactly the
rows an uninterrupted run would, none twice: batches are a pure function of (seed,
step), so the resumed steps see the same data.

:class:`Checkpointer` is this module's state (the step it saved last); what a checkpoint
holds comes from the parts handed to :meth:`Checkpointer.save`, each helper's own
state through its ``state_dict()`` (:class:`scaling.checkpoint.Stateful`), and goes back
through ``load_state_dict()``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from analysis.common import records
from analysis.common.errors import CheckpointError
from scaling import checkpoint as ckpt
from scaling import distributed as D
from scaling.train.branches import Branches
from scaling.config import TrainConfig, config_diff, to_dict
from scaling.train.diagnostics import NONFINITE_FILE, NonFiniteLog

log = logging.getLogger("scaling.train.run")


@dataclass
class Resumed:
    """Where a run starts: step 0 with nothing done, or a checkpoint's state, and what
    trimming the record found (on rank 0; zeros elsewhere)."""

    step: int = 0
    wall_offset: float = 0.0
    last_train_loss: Optional[float] = None
    metrics_rows: int = 0  # rows metrics.jsonl holds up to ``step``
    lost_metric_rows: int = 0  # rows written before the checkpoint that the file no longer holds


class Checkpointer:
    """One run's checkpoints: which to resume from, loading it, writing one after a step.

    Rank 0 decides and writes; every rank loads and waits. ``saved_step`` is the step of
    the checkpoint this process wrote last.
    """

    def __init__(self, run_dir: Path, world: D.World, cfg: TrainConfig, config_hash: str):
        self.run_dir, self.world, self.cfg, self.hash = Path(run_dir), world, cfg, config_hash
        self.saved_step: Optional[int] = None

    def to_resume(self) -> Optional[str]:
        """The checkpoint ``resume=`` names (a path, or the newest valid one for ``auto``),
        decided on rank 0 and shared with every rank; None to start afresh. Temporary files
        a kill left behind are removed first."""
        path = None
        if self.world.is_main:
            for p in ckpt.remove_partial(self.run_dir):
                log.info(f"removed {p.name}, a checkpoint write a kill interrupted")
            if self.cfg.resume.endswith(".pt"):
                path = self.cfg.resume
            elif self.cfg.resume == "auto":
                found = ckpt.latest_valid(self.run_dir)
                path = str(found[0]) if found else None
        if self.world.active:
            box = [path]
            torch.distributed.broadcast_object_list(box, src=0)
            path = box[0]
        return path

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, branches: Branches,
                nonfinite: NonFiniteLog) -> Resumed:
        """Load the checkpoint to resume from (if any) into the model, the optimizer, the
        RNGs, ``branches`` and ``nonfinite``, and trim the record to its step."""
        path = self.to_resume()
        if path is None:
            kept, lost = trim_records(self.run_dir, self.world, 0, [])
            return Resumed(metrics_rows=kept, lost_metric_rows=lost)
        # onto the CPU: RNG states must stay there, and load_state_dict moves the rest
        state = ckpt.load_checkpoint(path, map_location="cpu")
        if state.get("config_hash") != self.hash:
            diff = config_diff(state.get("config") or {}, self.cfg)
            if diff:
                key, theirs, ours = diff[0]
                raise CheckpointError(f"{path} was written with {key}={theirs!r}, this run has {key}={ours!r}"
                                      + (f" (and {len(diff) - 1} more difference(s))" if len(diff) > 1 else ""),
                                      field=key, fix=f"resume with {key}={theirs!r}, or start a new out directory")
            raise CheckpointError("was written by a run with a different configuration", field=str(path),
                                  fix="resume with the same settings, or start a new out directory")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])
        branches.load_state_dict(state)
        nonfinite.load_state_dict(state)
        step = int(state["step"])
        kept, lost = trim_records(self.run_dir, self.world, step, branches.rows,
                                  expected_rows=state.get("metrics_rows"))
        log.info(f"resumed from {path} at step {step}")
        return Resumed(step=step, wall_offset=float(state["wall_time"]), last_train_loss=state.get("last_train_loss"),
                       metrics_rows=kept, lost_metric_rows=lost)

    def save(self, step: int, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, tokens: int,
             wall_time: float, branches: Branches, nonfinite: NonFiniteLog, last_train_loss: Optional[float],
             metrics: Optional[records.JsonlAppender], metrics_rows: int) -> None:
        """A checkpoint of the state after ``step`` (rank 0 writes it, then flushes
        ``metrics`` to disk; every rank waits)."""
        self.saved_step = step
        if self.world.is_main:
            ckpt.save_checkpoint(self.run_dir, {
                "step": step, "tokens": tokens,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": ckpt.rng_state(), "wall_time": wall_time, **branches.state_dict(),
                "config_hash": self.hash, "config": to_dict(self.cfg), **nonfinite.state_dict(),
                "last_train_loss": last_train_loss, "metrics_rows": metrics_rows,
            }, keep=self.cfg.keep_checkpoints)
            metrics.sync()
        D.barrier(self.world)


def trim_records(run_dir: Path, world: D.World, step: int, branches: list,
                 expected_rows: int | None = None) -> tuple[int, int]:
    """Drop rows the resumed run will log again, so no step appears twice; say so when the
    metrics record holds fewer rows up to ``step`` than the checkpoint saw written
    (``expected_rows``): rows lost from the file cannot be logged again. (Rows kept, rows
    lost) on rank 0, which trims; (0, 0) on the others."""
    kept = lost = 0
    if world.is_main:
        kept = records.truncate_jsonl(run_dir / records.METRICS_FILE, lambda r: r.get("step", 0) <= step)
        records.truncate_jsonl(run_dir / NONFINITE_FILE, lambda r: r.get("step", 0) <= step)
        if expected_rows is not None and kept < expected_rows:
            lost = expected_rows - kept
            log.warning(f"{records.METRICS_FILE} holds {kept} rows up to step {step}, but {expected_rows} were "
                        f"written before the checkpoint: {lost} row(s) were lost (the file was cut short or "
                        f"edited) and cannot be logged again; the run goes on, and its loss curve has a gap "
                        f"(summary.json: lost_metric_rows)")
        done = {(b["fork_step"], b["step"]) for b in branches}
        records.truncate_jsonl(run_dir / records.BRANCHES_FILE,
                               lambda r: (r.get("fork_step"), r.get("step")) in done)
    D.barrier(world)
    return kept, lost

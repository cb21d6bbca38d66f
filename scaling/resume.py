"""Resuming: load the checkpoint to continue from and trim the record back to it.

A checkpoint holds the model, the optimizer, every RNG state, the wall time, the WSD
branches done so far and the counters the summary reports, all as of the end of its
step. The record files are cut back to that step, so a resumed run logs exactly the
rows an uninterrupted run would, none twice: batches are a pure function of (seed,
step), so the resumed steps see the same data.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import torch

from analysis.common import records
from analysis.common.errors import CheckpointError
from scaling import checkpoint as ckpt
from scaling import distributed as D
from scaling.config import config_diff, to_dict
from scaling.diagnostics import NONFINITE_FILE

if TYPE_CHECKING:
    from scaling.trainer import Trainer

log = logging.getLogger("scaling.train")


@dataclass
class Resumed:
    """Where a run starts: step 0 with nothing done, or a checkpoint's state."""

    step: int = 0
    wall_offset: float = 0.0
    branch_rows: list = field(default_factory=list)
    skipped_steps: int = 0
    last_train_loss: Optional[float] = None


def checkpoint_to_resume(t: "Trainer") -> Optional[str]:
    """The checkpoint ``resume=`` names (a path, or the newest valid one for ``auto``),
    decided on rank 0 and shared with every rank; None to start afresh. Temporary files
    a kill left behind are removed first."""
    path = None
    if t.is_main:
        for p in ckpt.remove_partial(t.run_dir):
            log.info(f"removed {p.name}, a checkpoint write a kill interrupted")
        if t.cfg.resume.endswith(".pt"):
            path = t.cfg.resume
        elif t.cfg.resume == "auto":
            found = ckpt.latest_valid(t.run_dir)
            path = str(found[0]) if found else None
    if t.world.active:
        box = [path]
        torch.distributed.broadcast_object_list(box, src=0)
        path = box[0]
    return path


def restore(t: "Trainer") -> Resumed:
    """Load the checkpoint to resume from (if any) into the model and optimizer, and
    trim the record to its step."""
    path = checkpoint_to_resume(t)
    if path is None:
        trim_records(t, 0, [])
        return Resumed()
    # onto the CPU: RNG states must stay there, and load_state_dict moves the rest
    state = ckpt.load_checkpoint(path, map_location="cpu")
    if state.get("config_hash") != t.hash:
        diff = config_diff(state.get("config") or {}, t.cfg)
        if diff:
            key, theirs, ours = diff[0]
            raise CheckpointError(f"{path} was written with {key}={theirs!r}, this run has {key}={ours!r}"
                                  + (f" (and {len(diff) - 1} more difference(s))" if len(diff) > 1 else ""),
                                  field=key, fix=f"resume with {key}={theirs!r}, or start a new out directory")
        raise CheckpointError("was written by a run with a different configuration", field=str(path),
                              fix="resume with the same settings, or start a new out directory")
    t.raw.load_state_dict(state["model"])
    t.opt.load_state_dict(state["optimizer"])
    ckpt.set_rng_state(state["rng"])
    got = Resumed(step=int(state["step"]), wall_offset=float(state["wall_time"]),
                  branch_rows=list(state["branches"]), skipped_steps=int(state.get("skipped_steps", 0)),
                  last_train_loss=state.get("last_train_loss"))
    trim_records(t, got.step, got.branch_rows, expected_rows=state.get("metrics_rows"))
    log.info(f"resumed from {path} at step {got.step}")
    return got


def trim_records(t: "Trainer", step: int, branches: list, expected_rows: int | None = None) -> None:
    """Drop rows the resumed run will log again, so no step appears twice; say so when the
    metrics record holds fewer rows up to ``step`` than the checkpoint saw written
    (``expected_rows``): rows lost from the file cannot be logged again."""
    if t.is_main:
        kept = records.truncate_jsonl(t.run_dir / records.METRICS_FILE, lambda r: r.get("step", 0) <= step)
        records.truncate_jsonl(t.run_dir / NONFINITE_FILE, lambda r: r.get("step", 0) <= step)
        if expected_rows is not None and kept < expected_rows:
            lost = expected_rows - kept
            t.lost_metric_rows += lost
            log.warning(f"{records.METRICS_FILE} holds {kept} rows up to step {step}, but {expected_rows} were "
                        f"written before the checkpoint: {lost} row(s) were lost (the file was cut short or "
                        f"edited) and cannot be logged again; the run goes on, and its loss curve has a gap "
                        f"(summary.json: lost_metric_rows)")
        t.metrics_rows = kept
        done = {(b["fork_step"], b["step"]) for b in branches}
        records.truncate_jsonl(t.run_dir / records.BRANCHES_FILE,
                               lambda r: (r.get("fork_step"), r.get("step")) in done)
    D.barrier(t.world)


def save(t: "Trainer", step: int) -> None:
    """A checkpoint of the state after ``step`` (rank 0 writes it; every rank waits)."""
    t.saved_step = step
    if t.is_main:
        ckpt.save_checkpoint(t.run_dir, {
            "step": step, "tokens": step * t.plan.batch_tokens,
            "model": t.raw.state_dict(), "optimizer": t.opt.state_dict(),
            "rng": ckpt.rng_state(), "wall_time": t.wall(), "branches": list(t.branch_rows),
            "config_hash": t.hash, "config": to_dict(t.cfg), "skipped_steps": t.skipped_steps,
            "last_train_loss": t.last_train_loss, "metrics_rows": t.metrics_rows,
        }, keep=t.cfg.keep_checkpoints)
        t.metrics.sync()
    D.barrier(t.world)

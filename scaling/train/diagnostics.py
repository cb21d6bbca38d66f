"""What a failing run leaves behind: non-finite steps, bad token ids, a full disk.

A non-finite loss or gradient stops the run (or skips the update) and leaves
``diverged.json`` (or a row in ``nonfinite.jsonl``) describing the step: what and where,
the last logged rows, the batch (which is a pure function of (seed, step), so it can be
drawn again), the parameters at fault and the checkpoint to go back to. A write that
fails for lack of space or permission becomes one line naming ``out``.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import Iterable, Optional

import torch

from analysis.common import records
from analysis.common.errors import DataError, RecordError
from scaling import checkpoint as ckpt

log = logging.getLogger("scaling.train.run")

#: Written when a run stops on a non-finite loss or gradient: what happened, where, and
#: what to resume from.
DIVERGED_FILE = "diverged.json"
#: One row per update skipped with ``on_nonfinite=skip``.
NONFINITE_FILE = "nonfinite.jsonl"
#: Errors of a write that say the disk, not the run, is at fault.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def num(x: float):
    """A float for JSON: non-finite values as the strings 'nan', 'inf', '-inf' (JSON has none)."""
    return x if math.isfinite(x) else str(x)


def check_tokens(batch, vocab_size: int, where: str) -> None:
    """Token ids outside the vocabulary would index past the embedding (a crash on
    CPU, a device-side assert on CUDA); name the place instead. The data loader checks
    the ends of each shard up front; this catches a bad id anywhere else."""
    lo, hi = int(batch.min()), int(batch.max())
    if lo < 0 or hi >= vocab_size:
        bad = hi if hi >= vocab_size else lo
        raise DataError(f"{where} holds token id {bad}, outside the vocabulary of {vocab_size}",
                        field="data.vocab_size", fix="set data.vocab_size to the tokenizer's real size, "
                        "or regenerate the shards")


class NonFiniteWatch:
    """The first non-finite step of a run, kept on the device.

    Reading a loss back to the host makes the CPU wait for the GPU, so the loop would
    stop queueing work; instead each step folds its loss and gradient norms into these
    tensors, and the trainer reads them only where it reads anyway (log, evaluation,
    checkpoint and branch steps). What the first bad step looked like (its number, loss,
    gradient norm and which parameters' gradients were non-finite) is kept, so the
    diagnostic still names that step however late it is read.
    """

    def __init__(self, device: torch.device, n_params: int):
        self.step = torch.zeros((), dtype=torch.int64, device=device)  # 0: none yet
        self.values = torch.zeros(2, device=device)  # loss, gradient norm at that step
        self.grads = torch.zeros(n_params, dtype=torch.bool, device=device)
        self.names: list[str] = []  # the parameters self.grads describes

    def update(self, step: int, loss: torch.Tensor, gnorm: torch.Tensor, norms: torch.Tensor,
               names: list[str]) -> None:
        """Fold one step in: ``norms`` are the gradient norms of the parameters ``names``."""
        first = ~(torch.isfinite(loss) & torch.isfinite(gnorm)) & (self.step == 0)
        self.step = torch.where(first, step, self.step)
        self.values = torch.where(first, torch.stack([loss.float(), gnorm.float()]), self.values)
        if len(names) == len(self.grads):
            self.grads = torch.where(first, ~torch.isfinite(norms), self.grads)
            self.names = names

    def first(self) -> int:
        """The first non-finite step, 0 if none (one read from the device)."""
        return int(self.step)

    def details(self) -> tuple[float, float, dict]:
        """Loss, gradient norm and the non-finite gradients of the first bad step."""
        loss, gnorm = (float(x) for x in self.values.tolist())
        bad = [n for n, b in zip(self.names, self.grads.tolist()) if b]
        return loss, gnorm, {"names": bad[:20], "count": len(bad)}


def nonfinite_names(tensors: Iterable[tuple[str, Optional[torch.Tensor]]]) -> dict:
    """Names of the parameters whose tensor (value or gradient) holds a NaN or inf."""
    bad = [n for n, t in tensors if t is not None and not bool(torch.isfinite(t).all())]
    return {"names": bad[:20], "count": len(bad)}


def batch_record(seed: int, step: int, batch, seq_len: int) -> dict:
    """The batch of a step: it is a pure function of (seed, step), so these draw it again."""
    return {"seed": seed, "step": step, "sequences": int(batch.shape[0]), "seq_len": seq_len,
            "sha256": hashlib.sha256(batch.tobytes()).hexdigest(),
            "draw": "corpus.train.sample(seed, step, sequences, seq_len)"}


class NonFiniteLog:
    """The non-finite steps of one run: this module's own state.

    It counts the updates ``on_nonfinite=skip`` skipped (checkpointed:
    :meth:`state_dict` / :meth:`load_state_dict`, and put back after a cooldown branch),
    keeps the record of the latest non-finite step (``last``, what ``diverged.json`` and
    ``nonfinite.jsonl`` hold) and the last metric rows the trainer logged (``recent``).
    Rank 0 writes the files.
    """

    def __init__(self, run_dir: Path, is_main: bool, on_nonfinite: str):
        self.run_dir, self.is_main, self.on_nonfinite = Path(run_dir), is_main, on_nonfinite
        self.skipped_steps = 0
        self.recent: deque = deque(maxlen=8)  # the last metric rows, for diverged.json
        self.last: Optional[dict] = None  # what the last non-finite step looked like

    def record(self, step: int, what: str, loss: float, in_branch: Optional[tuple], **details) -> dict:
        """Everything needed to look into a non-finite step: what and where (``in_branch``:
        the ``(fork, end)`` of the cooldown branch training, or None), the last logged
        rows, the checkpoint to go back to, and the caller's ``details``. Kept as ``last``."""
        newest = ckpt.list_checkpoints(self.run_dir)
        self.last = {"step": step, "what": what, "loss": num(loss), **details, "in_branch": in_branch,
                     "on_nonfinite": self.on_nonfinite, "skipped_steps": self.skipped_steps,
                     "recent_rows": list(self.recent), "last_checkpoint": str(newest[-1]) if newest else None,
                     "time": time.time()}
        return self.last

    def skipped(self, in_branch: Optional[tuple]) -> None:
        """Count the update :meth:`record` just described as skipped; on the main run (not
        inside a cooldown branch) rank 0 writes its ``nonfinite.jsonl`` row."""
        self.skipped_steps += 1
        if self.is_main and not in_branch:
            with records.JsonlAppender(self.run_dir / NONFINITE_FILE) as f:
                f.append(self.last)

    def write_diverged(self, run_name: str, config_hash: str) -> None:
        """``diverged.json``: the non-finite step's record (best effort: the run is
        already failing, and the summary still says why)."""
        if not self.is_main or self.last is None:
            return
        try:
            records.atomic_write_json(self.run_dir / DIVERGED_FILE, {**self.last, "run_name": run_name,
                                                                     "config_hash": config_hash})
        except OSError as e:
            log.warning(f"could not write {DIVERGED_FILE}: {e}")

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the updates skipped so far."""
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict) -> None:
        self.skipped_steps = int(state.get("skipped_steps", 0))


def storage_error(e: BaseException, run_dir: Path, step: int) -> Optional[RecordError]:
    """A write refused for lack of space or permission, as one line naming ``out``; None
    for any other error."""
    if not isinstance(e, OSError) or e.errno not in STORAGE_ERRNOS:
        return None
    where = f" ({e.filename})" if e.filename else ""
    return RecordError(f"could not write the run record{where}: {e.strerror or e} at step {step}; the newest "
                       f"checkpoint and the rows logged so far are intact", field="out",
                       fix=f"free disk space (or restore write access to {run_dir}) and rerun the same command "
                           "to resume")

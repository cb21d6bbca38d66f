"""Checks before a run spends time: the run directory, the disk, the device and the kernels.

The output directory is checked for write access before any data is read, and for free
space once the model's size is known; a refusal leaves nothing behind. Under torchrun
rank 0 checks and every rank raises its error (:func:`on_all_ranks`), so no rank waits
forever at the next collective for one that gave up.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
from pathlib import Path
from typing import Callable, Optional

import torch

from analysis.common import records
from analysis.common.errors import ConfigError
from scaling import checkpoint as ckpt
from scaling import distributed as D
from scaling.config import Plan, TrainConfig
from scaling.kernels import get_ops, resolve_kernels
from analysis.common.text import si

log = logging.getLogger("scaling.train.run")

#: Bytes per parameter in a checkpoint: fp32 weights and AdamW's two fp32 moments.
CKPT_BYTES_PER_PARAM = 12
#: Room left for the record beside the checkpoints: config, summary, branches, RNG states.
RECORD_SLACK_BYTES = 4 << 20
#: Rough size of one metrics.jsonl row.
METRIC_ROW_BYTES = 400


def previous_summary(run_dir: Path, config_hash: str, resume: str) -> Optional[dict]:
    """The summary already in the run directory, checked against this config."""
    path = run_dir / records.SUMMARY_FILE
    if not path.exists():
        return None
    prev = records.read_summary(run_dir)
    if prev.get("config_hash") != config_hash:
        raise ConfigError(f"{run_dir} holds a run with a different configuration "
                          f"(hash {prev.get('config_hash')} != {config_hash})", field="out",
                          fix="choose a new out directory, or rerun with the same settings to resume")
    if resume == "never":
        raise ConfigError(f"{run_dir} already holds a run", field="out",
                          fix="use resume=auto to continue it, or choose a new out directory")
    return prev


def check_writable(d: Path) -> list[Path]:
    """Fail now, not after tokenizing and training, if ``out`` cannot be written.

    Creates the run directory's missing parents the way the run will, writes and
    removes a probe file, and removes again any directory it created, so a refusal
    leaves nothing behind. Returns the directories it created, for
    :func:`remove_created` to undo if the run fails before it starts.
    """
    if d.exists() and not d.is_dir():
        raise ConfigError(f"{d} is a file, not a directory", field="out",
                          fix="choose a directory path for out")
    created = []
    try:
        p = d
        while not p.exists():
            created.append(p)
            p = p.parent
        for q in reversed(created):
            q.mkdir()
        probe = d / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        remove_created(created)
        raise ConfigError(f"cannot write the run record to {d} ({e.strerror or e})", field="out",
                          fix="choose an out directory on a writable file system") from None
    return created


def remove_created(created: list[Path]) -> None:
    """Undo the directories :func:`check_writable` created (still empty: nothing was written)."""
    for q in created:
        with contextlib.suppress(OSError):
            q.rmdir()


def check_space(run_dir: Path, n_params: int, plan: Plan, cfg: TrainConfig) -> None:
    """Refuse to start a run whose checkpoints cannot fit in the free disk space.

    A checkpoint is about 12 bytes per parameter (fp32 weights and AdamW's two
    moments); ``keep_checkpoints`` of them stay on disk and one more is written
    before the oldest is pruned. Checkpoints already in the directory count as used.
    """
    ckpt_size = n_params * CKPT_BYTES_PER_PARAM
    writes_ckpt = plan.ckpt_every > 0 or cfg.save_final
    have = len(ckpt.list_checkpoints(run_dir))
    copies = max(1, cfg.keep_checkpoints + 1 - have) if writes_ckpt else 0
    need = copies * ckpt_size + RECORD_SLACK_BYTES + METRIC_ROW_BYTES * (plan.total_steps // cfg.log_every + 1)
    free = shutil.disk_usage(run_dir).free
    if need > free:

        raise ConfigError(f"needs about {si(need)}B free for {copies} checkpoint(s) of {si(ckpt_size)}B "
                          f"and the record, but {run_dir} has {si(free)}B free", field="out",
                          fix="free disk space, choose another out directory, or lower keep_checkpoints")


def on_all_ranks(world: D.World, device: torch.device, check: Callable[[], None]) -> None:
    """Run a check on rank 0 and raise its error on every rank, so that under torchrun no
    rank waits forever at the next collective for one that gave up."""
    err = None
    try:
        if world.is_main:
            check()
    except ConfigError as e:
        err = e
    if world.active and D.any_rank(world, err is not None, device) and err is None:
        err = ConfigError("rank 0 refused the run directory", field="out", fix="see rank 0's error")
    if err is not None:
        raise err


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device of ``device=``, the one place it is chosen: auto picks CUDA when there is
    one; ``cuda`` means this process's GPU, ``local_rank`` (:func:`scaling.distributed.local_rank`
    under torchrun)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("CUDA is not available on this machine", field="device", fix="use device=cpu")
        if name == "cuda":
            return torch.device("cuda", local_rank)
    elif name != "cpu":
        raise ConfigError(f"unknown device {name!r}", field="device", fix="use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def device_memory(device: torch.device) -> Optional[int]:
    """Bytes of memory of a CUDA device (what ``micro_batch=auto`` is sized to); None on the CPU."""
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def choose_kernels(requested: str, device: torch.device) -> str:
    """The kernels a run uses: ``kernels=auto`` falls back to eager where the preferred
    ones cannot load; an explicit choice that cannot load is an error."""

    kernels = resolve_kernels(requested, device.type)
    try:
        get_ops(kernels)
    except ConfigError:
        if requested != "auto":
            raise
        log.warning(f"kernels=auto: {kernels} kernels unavailable here, using eager")
        kernels = "eager"
    if kernels == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ConfigError("triton kernels need a CUDA device", field="kernels",
                          fix="use kernels=eager on CPU (or set TRITON_INTERPRET=1 to test them, slowly)")
    return kernels

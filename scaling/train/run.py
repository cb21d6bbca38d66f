"""The library entry point: ``train(cfg, out_dir) -> summary``.

:func:`train` settles a run once, before any work: the device (one function,
:func:`scaling.train.preflight.resolve_device`), the process group, and :func:`resolve_run`:
the :class:`~scaling.config.Plan` resolved with the data's vocabulary, and the run's
name and directory, both from that Plan. The :class:`~scaling.train.trainer.Trainer` is handed
them and executes the Plan.

Hydra's basic launcher runs every job of a sweep in one process, so one run must leave
no trace in the next: :func:`train` puts back torch's thread count, default dtype and
matmul precision, every RNG state, the SIGTERM handler, logging handlers, a process
group it created, and torch.compile's caches.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from scaling import distributed as D
from scaling.train import preflight
from scaling.config import TrainConfig, check_settings, default_run_name, resolve, to_train_config
from scaling.data.corpus import data_vocab
from scaling.train.trainer import RunSpec, Trainer


class TrainResult(dict):
    """What :func:`train` returns: the run's ``summary.json`` contents (a dict, as callers
    have always read it), and ``run_dir``, the directory its record is in."""

    def __init__(self, summary: dict, run_dir: Path):
        super().__init__(summary)
        self.run_dir = Path(run_dir)


def resolve_run(cfg: TrainConfig, world: D.World, out_dir: Optional[str | os.PathLike] = None, *,
                device: Optional[torch.device] = None) -> RunSpec:
    """The run's :class:`~scaling.config.Plan`, name and directory, settled once.

    The Plan is resolved with the data's vocabulary (known before any token is read:
    :func:`scaling.data.corpus.data_vocab`), this world's size and, for ``micro_batch=auto``, the
    memory of ``device`` (by default ``cfg.device``'s, :func:`scaling.train.preflight.resolve_device`).
    The name is ``run_name``, else the Plan's (preset and tokens); the directory is
    ``out_dir``, else ``cfg.out``, else ``runs/<name>``. A config that does not resolve
    fails here, before the run directory is touched or data is read."""
    if device is None:
        device = preflight.resolve_device(cfg.device, world.local_rank)
    vocab = data_vocab(cfg.data)
    plan = resolve(cfg, vocab, world.size, device_bytes=preflight.device_memory(device))
    name = cfg.run_name or default_run_name(cfg, plan)
    run_dir = Path(out_dir) if out_dir is not None else Path(cfg.out) if cfg.out else Path("runs") / name
    return RunSpec(plan=plan, data_vocab=vocab, run_name=name, run_dir=run_dir, device=device)


def train(cfg: Any, out_dir: Optional[str | os.PathLike] = None, before_training=None) -> TrainResult:
    """Train one model for exactly its token budget and return its ``summary.json`` contents
    (with ``.run_dir``, the directory of its record: a :class:`TrainResult`).

    ``cfg`` is a :class:`~scaling.config.TrainConfig`, or a dict / OmegaConf config with
    the same keys (e.g. a Hydra job's). A run directory that already holds a completed
    run with the same configuration is returned as is; an unfinished one is resumed
    from its newest valid checkpoint (``resume=auto``). Under ``torchrun`` every rank
    calls this; rank 0 writes the record. Errors are :class:`analysis.common.errors.ToolkitError`
    subclasses with a one-line message naming the field. ``before_training(plan, device)``
    runs on rank 0 of a fresh run after every check, before the first step.
    """
    cfg = to_train_config(cfg)
    check_settings(cfg)  # before isolated() applies threads
    with isolated(cfg):
        device = preflight.resolve_device(cfg.device, D.local_rank())  # a bad device fails before any work
        world = D.setup(device.type)
        try:
            run = resolve_run(cfg, world, out_dir, device=device)
            summary = Trainer(cfg, run, world, before_training=before_training).run()
            # rank 0 is still writing the record: a rank that tears gloo down under it can
            # abort at exit ("terminate called without an active exception")
            D.barrier(world)
            return TrainResult(summary, run.run_dir)
        finally:
            if world.active:
                # The trainer can be held in reference cycles (an exception's traceback holds its
                # frames), so its DDP reducer (and the gloo work objects holding tensors) could
                # otherwise die at interpreter exit, after the group, where freeing a tensor takes
                # the GIL of a dying interpreter: SIGABRT, "terminate called without an active
                # exception" (pytorch/pytorch#179291).
                gc.collect()
            D.teardown(world)


@contextlib.contextmanager
def isolated(cfg: TrainConfig):
    """Run a job with its own torch settings, RNG and logging, restoring the caller's after."""
    threads = torch.get_num_threads()
    dtype = torch.get_default_dtype()
    matmul_precision = torch.get_float32_matmul_precision()
    py_rng, np_rng, torch_rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    log_level = logging.getLogger("scaling").level
    handler = _attach_log_handler()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.set_default_dtype(torch.float32)
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        torch.set_float32_matmul_precision(matmul_precision)
        random.setstate(py_rng)
        np.random.set_state(np_rng)
        torch.set_rng_state(torch_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        if cfg.compile or cfg.kernels == "compile":
            torch._dynamo.reset()  # compiled graphs hold the finished run's model alive
        if handler is not None:
            logging.getLogger("scaling").removeHandler(handler)
        logging.getLogger("scaling").setLevel(log_level)


def _attach_log_handler() -> Optional[logging.Handler]:
    """Send the toolkit's log lines to stderr unless the application (e.g. Hydra) already
    routes logging somewhere; returns the handler to remove afterwards."""
    logger = logging.getLogger("scaling")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if logging.getLogger().handlers or logger.handlers:
        return None
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(h)
    return h

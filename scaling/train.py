"""The library entry point: ``train(cfg, out_dir) -> summary``.

Hydra's basic launcher runs every job of a sweep in one process, so one run must leave
no trace in the next: :func:`train` puts back torch's thread count, default dtype and
matmul precision, every RNG state, the SIGTERM handler, logging handlers, a process
group it created, and torch.compile's caches.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any, Optional

from analysis.common.errors import ToolkitError
from scaling.config import TrainConfig, check_settings, to_train_config


def run_dir_for(cfg: TrainConfig, out_dir: Optional[str | os.PathLike] = None) -> Path:
    """Where a run's record goes: ``out_dir``, else ``cfg.out``, else ``runs/<run name>``."""
    if out_dir is not None:
        return Path(out_dir)
    if cfg.out:
        return Path(cfg.out)
    from scaling.config import default_run_name, resolve
    from scaling.data import expected_vocab

    if cfg.run_name:
        return Path("runs") / cfg.run_name
    vocab = expected_vocab(cfg.data) or cfg.arch.vocab_size or 256
    try:
        return Path("runs") / default_run_name(cfg, resolve(cfg, vocab))
    except ToolkitError:
        return Path("runs") / f"model={cfg.model}"


def train(cfg: Any, out_dir: Optional[str | os.PathLike] = None, before_training=None) -> dict:
    """Train one model for exactly its token budget and return its ``summary.json`` contents.

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
    run_dir = run_dir_for(cfg, out_dir)
    with isolated(cfg):
        import torch

        from scaling import distributed as D
        from scaling.preflight import resolve_device
        from scaling.trainer import Trainer

        device_type = "cuda" if cfg.device.startswith("cuda") or (
            cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        world = D.setup(device_type)
        try:
            resolve_device(cfg.device, world)  # fail on a bad device before any work
            summary = Trainer(cfg, run_dir, world, before_training=before_training).run()
            # rank 0 is still writing the record: a rank that tears gloo down under it can
            # abort at exit ("terminate called without an active exception")
            D.barrier(world)
            return summary
        finally:
            if world.active:
                # The trainer's helpers hold it in reference cycles, so its DDP reducer (and the
                # gloo work objects holding tensors) would otherwise die at interpreter exit, after
                # the group, where freeing a tensor takes the GIL of a dying interpreter: SIGABRT,
                # "terminate called without an active exception" (pytorch/pytorch#179291).
                import gc

                gc.collect()
            D.teardown(world)


@contextlib.contextmanager
def isolated(cfg: TrainConfig):
    """Run a job with its own torch settings, RNG and logging, restoring the caller's after."""
    import numpy as np
    import torch

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

"""Live training curves for TensorBoard or Weights & Biases (``logger=tensorboard|wandb``).

The run record (``metrics.jsonl``) stays the source of truth; a logger receives the same
rows, written by rank 0 at the same log steps, so it adds no read of the device and no
row the record lacks. Each numeric column of a row becomes one scalar under its own name
(``train_loss``, ``val_loss``, ``lr``, ``tokens_per_s``, ...) at the row's ``step``.
Scaling studies compare runs by tokens and compute, not steps: TensorBoard also gets each
loss against tokens (``val_loss/by_tokens``) and against training FLOPs in units of 1e9
(``val_loss/by_gflops``: its steps are integers, and FLOPs pass 2^63); W&B plots the
losses against ``tokens`` by default (``define_metric``), and any logged column, ``flops``
included, can be chosen as the x axis.

Both libraries are optional extras (``pip install 'scaling-toolkit[tensorboard]'`` or
``[wandb]``) and are imported only when a run asks for them, so the trainer imports and
runs without either.

TensorBoard event files go to ``<run_dir>/tensorboard`` (``tensorboard --logdir runs``
shows a whole sweep). W&B writes under ``<run_dir>/wandb`` in offline mode unless
``WANDB_MODE`` says otherwise, so a run on a cluster node without network still works;
``wandb sync <run_dir>/wandb/offline-run-*`` uploads it later. ``WANDB_PROJECT`` names
the project (default ``scaling-toolkit``); the W&B run is named after the run and keyed
by its config hash, so a resumed run continues the same W&B run.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

from analysis.common.errors import ConfigError

#: Subdirectories of the run directory that each logger writes.
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
WANDB_DEFAULT_PROJECT = "scaling-toolkit"


#: The columns also charted against tokens and FLOPs.
LOSSES = ("train_loss", "val_loss")


def scalars(row: dict) -> dict:
    """The row's finite numeric values except ``step``, the x axis."""
    return {k: float(v) for k, v in row.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class TensorBoardLogger:
    def __init__(self, run_dir: Path, run_name: str, config: dict):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise _missing("tensorboard", e) from None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))
        self.writer.add_text("config", f"{run_name}\n\n" + "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def log(self, row: dict) -> None:
        values = scalars(row)
        for k, v in values.items():
            self.writer.add_scalar(k, v, global_step=int(row["step"]))
        for k in LOSSES:
            if k in values:
                self.writer.add_scalar(f"{k}/by_tokens", values[k], global_step=int(row["tokens"]))
                if "flops" in row:
                    self.writer.add_scalar(f"{k}/by_gflops", values[k], global_step=int(row["flops"] / 1e9))

    def close(self, ok: bool = True) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, run_dir: Path, run_name: str, config: dict, run_id: str):
        try:
            import wandb
        except ImportError as e:
            raise _missing("wandb", e) from None
        path = Path(run_dir) / WANDB_DIR
        path.mkdir(parents=True, exist_ok=True)
        # Offline unless asked: a job must not hang on a compute node without network.
        mode = os.environ.get("WANDB_MODE") or "offline"
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or WANDB_DEFAULT_PROJECT, name=run_name,
                              id=run_id, resume="allow", dir=str(run_dir), mode=mode, config=config)
        # the losses against tokens by default, as scaling studies compare runs
        self.run.define_metric("tokens")
        for k in LOSSES:
            self.run.define_metric(k, step_metric="tokens")

    def log(self, row: dict) -> None:
        self.run.log(scalars(row), step=int(row["step"]))

    def close(self, ok: bool = True) -> None:
        self.run.finish(exit_code=0 if ok else 1)


def _missing(name: str, e: ImportError) -> ConfigError:
    return ConfigError(f"logger={name} needs the {name} package ({e})", field="logger",
                       fix=f"pip install 'scaling-toolkit[{name}]', or set logger=none")


def open_logger(kind: str, run_dir: Path, run_name: str, config: dict, run_id: str):
    """The logger a run asked for, or None for ``logger=none``."""
    kind = getattr(kind, "value", kind)
    if kind == "none":
        return None
    if kind == "tensorboard":
        return TensorBoardLogger(run_dir, run_name, config)
    if kind == "wandb":
        return WandbLogger(run_dir, run_name, config, run_id)
    raise ConfigError(f"unknown logger {kind!r}", field="logger", fix="use tensorboard, wandb or none")


def close_logger(logger: Optional[object], ok: bool) -> None:
    if logger is not None:
        logger.close(ok)

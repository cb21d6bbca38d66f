"""Progress of a run: a tqdm bar on a terminal, plain log lines otherwise (``progress=``)."""
from __future__ import annotations

import logging
import sys
from typing import Optional

from scaling.config import Plan, Progress
from analysis.common.text import si

log = logging.getLogger("scaling.train.run")


class Reporter:
    """A tqdm bar on a terminal, plain log lines otherwise (or nothing)."""

    def __init__(self, mode: Progress, plan: Plan, start_step: int, enabled: bool):
        if mode == Progress.auto:
            mode = Progress.bar if sys.stderr.isatty() else Progress.log
        self.mode = mode if enabled else Progress.none
        self.plan = plan
        self.every = max(1, plan.total_steps // 20)  # about 20 log lines per run
        self.last_line = start_step
        self.bar = None
        if self.mode == Progress.bar:
            from tqdm import tqdm

            self.bar = tqdm(total=plan.tokens, initial=start_step * plan.batch_tokens, unit="tok",
                            unit_scale=True, dynamic_ncols=True, file=sys.stderr, leave=True)

    def step(self, step: int, row: Optional[dict]) -> None:
        if self.bar is not None:
            self.bar.update(self.plan.batch_tokens)
            if row:
                post = {"loss": f"{row['train_loss']:.3f}"}
                if row.get("val_loss") is not None:
                    post["val"] = f"{row['val_loss']:.3f}"
                self.bar.set_postfix(post, refresh=False)
        elif self.mode == Progress.log and row and (step - self.last_line >= self.every or "val_loss" in row
                                                     or step == self.plan.total_steps):

            self.last_line = step
            val = f" val {row['val_loss']:.4f}" if row.get("val_loss") is not None else ""
            tps = f" {si(row['tokens_per_s'])} tok/s" if row.get("tokens_per_s") else ""
            log.info(f"step {step}/{self.plan.total_steps} tokens {si(row['tokens'])} "
                     f"loss {row['train_loss']:.4f}{val} lr {row['lr']:.3g}{tps}")

    def message(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        elif self.mode != Progress.none:
            log.info(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

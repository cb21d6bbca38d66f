"""Pre-emption: SIGTERM (what SLURM sends before a kill) becomes a request to stop.

The handler only records the signal; the trainer checks :attr:`StopRequest.asked` after
each step (under torchrun, where the ranks must agree through a collective, only at log
and checkpoint steps: :meth:`scaling.train.trainer.Trainer.stop_asked`), checkpoints, marks the
run ``resumable`` and raises :class:`Stop`. A signal that arrives while a checkpoint is being written therefore lets
the write finish.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Optional


class Stop(Exception):
    """Raised inside the loop when SIGTERM asked the run to checkpoint and exit."""

    def __init__(self, step: int):
        super().__init__(f"stopped after step {step}")
        self.step = step


class StopRequest:
    """Whether SIGTERM arrived while :meth:`installed` was active."""

    def __init__(self):
        self.signum: Optional[int] = None

    @property
    def asked(self) -> bool:
        return self.signum is not None

    def _on_signal(self, signum, frame) -> None:
        self.signum = signum

    @contextlib.contextmanager
    def installed(self):
        """SIGTERM asks for a checkpoint at the end of the current step. The previous
        handler is put back afterwards. Off the main thread (where Python cannot install
        handlers) nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        prev = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, prev)

"""Training batches prepared while the device works on the previous step.

Each step's global batch is a pure function of (seed, step) (:meth:`TokenStream.sample`);
a process trains on a contiguous share of its rows. The :class:`Loader` draws only that
share, in the tokens' stored dtype (two or four bytes a token, not eight), checks the
ids on the host, and does it on a background thread one step ahead, into page-locked
memory on CUDA, so the copy to the device is asynchronous and the host never stops
queueing work for it (nanoGPT and llm.c prefetch the same way). The cast to int64
happens on the device. The data is bit for bit what a synchronous draw would give, so
resume and any number of processes still see the same batches.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

import numpy as np
import torch

from scaling.train.diagnostics import check_tokens
from scaling.data.tokens import TokenStream

#: Stored dtypes torch holds as they are; any other is widened to int64 on the host.
_TORCH_DTYPES = {np.dtype(t) for t in (np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)}


class Loader:
    """This process's rows of each step's batch, as a host tensor ready for the device.

    ``prefetch=False`` draws on the calling thread the way the loop once did (the whole
    global batch as int64, then this share): the baseline ``scaling.app.bench train``
    measures against.
    """

    def __init__(self, stream: TokenStream, seed: int, sequences: int, seq_len: int, rows: slice,
                 vocab_size: int, pin: bool, last_step: int, prefetch: bool = True):
        self.stream, self.seed, self.n, self.seq_len, self.rows = stream, seed, sequences, seq_len, rows
        self.vocab_size, self.pin, self.last_step, self.prefetch = vocab_size, pin, last_step, prefetch
        self.dtype = stream.dtype if stream.dtype in _TORCH_DTYPES else np.dtype(np.int64)
        self.pool: Optional[ThreadPoolExecutor] = None
        self.ahead: dict[int, Future] = {}

    def draw(self, step: int) -> torch.Tensor:
        """Step ``step``'s share, drawn now (a DataError names the step if an id is out of range)."""
        where = f"the batch of step {step}"
        if not self.prefetch:
            batch = self.stream.sample(self.seed, step, self.n, self.seq_len)
            check_tokens(batch, self.vocab_size, where)
            return torch.from_numpy(batch[self.rows])
        rows = self.stream.sample_rows(self.seed, step, self.n, self.seq_len, self.rows,
                                       out=np.empty((len(range(self.n)[self.rows]), self.seq_len + 1), self.dtype))
        check_tokens(rows, self.vocab_size, where)
        batch = torch.from_numpy(rows)
        # page-locked, so that the copy to the device can overlap the step before it
        return batch.pin_memory() if self.pin else batch

    def get(self, step: int) -> torch.Tensor:
        """Step ``step``'s share; starts drawing step ``step + 1``'s. Steps asked for out of
        order (a WSD branch re-trains steps the main run has done) are drawn on the spot."""
        if not self.prefetch:
            return self.draw(step)
        fut = self.ahead.pop(step, None)
        for f in self.ahead.values():
            f.cancel()
        self.ahead.clear()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scaling-loader")
        batch = fut.result() if fut is not None else self.draw(step)
        if step < self.last_step:
            self.ahead[step + 1] = self.pool.submit(self.draw, step + 1)
        return batch

    def close(self) -> None:
        """Stop the background thread (a draw in progress finishes first)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool, self.ahead = None, {}

"""Token streams: a split's tokens as memory-mapped arrays, the windows a batch is drawn
from, and the corpus that pairs a training and a validation split.

Batches: the windows of step ``s`` are drawn from ``numpy.random.default_rng((seed, s))``
alone, so a resumed run, or a run on any number of processes, sees exactly the batches
an uninterrupted single-process run would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from analysis.common.errors import DataError

__all__ = ["TokenStream", "Corpus", "token_dtype", "predicted_bytes"]


class TokenStream:
    """A split's tokens: one or more 1-D arrays (memory-mapped), windows never cross arrays."""

    def __init__(self, arrays: List[np.ndarray], name: str):
        self.arrays = [a for a in arrays if len(a)]
        self.name = name
        self.n_tokens = int(sum(len(a) for a in self.arrays))

    def _starts(self, width: int) -> np.ndarray:
        return np.array([max(0, len(a) - width + 1) for a in self.arrays], dtype=np.int64)

    def _positions(self, seed: int, step: int, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(array, offset) of each of the ``n`` windows of (seed, step)."""
        counts = self._starts(width)
        total = int(counts.sum())
        rng = np.random.default_rng((seed, step))
        pos = rng.integers(0, total, size=n)
        cum = np.cumsum(counts)
        which = np.searchsorted(cum, pos, side="right")
        return which, pos - (cum[which] - counts[which])

    def sample(self, seed: int, step: int, n: int, seq_len: int) -> np.ndarray:
        """``n`` windows of ``seq_len + 1`` tokens (int64), a pure function of (seed, step)."""
        width = seq_len + 1
        self.require_window(seq_len)
        which, offs = self._positions(seed, step, n, width)
        return np.stack([np.asarray(self.arrays[w][o:o + width], dtype=np.int64) for w, o in zip(which, offs)])

    def sample_rows(self, seed: int, step: int, n: int, seq_len: int, rows: slice,
                    out: Optional[np.ndarray] = None) -> np.ndarray:
        """Rows ``rows`` of :meth:`sample`'s batch, in the stored dtype (uint16 or uint32 for
        the toolkit's caches and shards): one process's share, without drawing the others'.
        All ``n`` positions are drawn, so the share is the same whoever draws it."""
        width = seq_len + 1
        self.require_window(seq_len)
        which, offs = self._positions(seed, step, n, width)
        which, offs = which[rows], offs[rows]
        if out is None:
            out = np.empty((len(which), width), dtype=self.dtype)
        for i, (w, o) in enumerate(zip(which, offs)):
            out[i] = self.arrays[w][o:o + width]
        return out

    @property
    def dtype(self) -> np.dtype:
        """The tokens' stored dtype, common to the arrays (int64 for none)."""
        return np.result_type(*[a.dtype for a in self.arrays]) if self.arrays else np.dtype(np.int64)

    def require_window(self, seq_len: int) -> None:
        """DataError naming ``seq_len`` unless some array holds a window of ``seq_len + 1`` tokens."""
        if int(self._starts(seq_len + 1).sum()) <= 0:
            longest = max((len(a) for a in self.arrays), default=0)
            raise DataError(f"seq_len={seq_len} needs windows of {seq_len + 1} tokens, but the {self.name} split's "
                            f"longest stretch has {longest}", field="seq_len",
                            fix="lower seq_len, or give the split more data (data.val_frac, data.max_files, "
                                "data.max_bytes)")

    def windows(self, seq_len: int, max_tokens: int) -> np.ndarray:
        """Consecutive non-overlapping windows from the start, up to ``max_tokens`` predicted
        tokens: the fixed evaluation set."""
        self.require_window(seq_len)
        width, out, budget = seq_len + 1, [], max(1, max_tokens // seq_len)
        for a in self.arrays:
            for o in range(0, len(a) - width + 1, seq_len):
                if len(out) >= budget:
                    break
                out.append(np.asarray(a[o:o + width], dtype=np.int64))
        if not out:
            raise DataError(f"the {self.name} split has {self.n_tokens} tokens, fewer than one window "
                            f"of {width}", field="data.val_frac",
                            fix="raise data.val_frac or data.max_files/max_bytes, or lower seq_len")
        return np.stack(out)

    def head(self, n: int) -> "TokenStream":
        """The first ``n`` tokens of the split, in its fixed order (whole arrays, the last one cut)."""
        out, left = [], int(n)
        for a in self.arrays:
            if left <= 0:
                break
            out.append(a[:left])
            left -= len(out[-1])
        return TokenStream(out, self.name)

    def max_token(self, sample: int = 1 << 20) -> int:
        """Largest id in the first and last ``sample`` tokens of each array (a cheap check)."""
        m = 0
        for a in self.arrays:
            m = max(m, int(np.max(a[:sample])), int(np.max(a[-sample:])))
        return m


@dataclass
class Corpus:
    train: TokenStream
    val: TokenStream
    vocab_size: int
    meta: dict
    #: Bytes of text each token id stands for (index: the id), or None where the text is
    #: unknown (pre-tokenized shards): what bits per byte is computed from.
    token_bytes: Optional[np.ndarray] = None


def predicted_bytes(windows: np.ndarray, token_bytes: Optional[np.ndarray]) -> Optional[int]:
    """Bytes of text the predicted tokens of evaluation ``windows`` stand for (each window's
    tokens after its first, the ones its loss averages over), or None when ``token_bytes``
    is unknown."""
    if token_bytes is None:
        return None
    return int(np.asarray(token_bytes, dtype=np.int64)[np.asarray(windows)[:, 1:]].sum())


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32

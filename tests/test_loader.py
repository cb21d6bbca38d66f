"""The prefetching loader: each process draws only its rows, in the stored dtype, on a
background thread, and gets bit for bit the rows of the synchronous whole-batch draw."""
import threading

import numpy as np
import pytest
import torch

from analysis.common.errors import DataError
from scaling.train.loader import Loader
from scaling.data.tokens import TokenStream


def _stream(dtype=np.uint16, vocab=5000):
    rng = np.random.default_rng(7)
    # several arrays of uneven length, one too short for a window: windows never cross arrays
    return TokenStream([rng.integers(0, vocab, size=n).astype(dtype) for n in (900, 40, 3000, 10, 1700)], "train")


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("world", [1, 2, 4])
def test_each_share_is_its_rows_of_the_whole_batch(dtype, world):
    s = _stream(dtype)
    per = 16 // world
    for step in (1, 2, 57):
        whole = s.sample(3, step, 16, 63)  # the reference: the int64 draw of the whole batch
        shares = [s.sample_rows(3, step, 16, 63, slice(r * per, (r + 1) * per)) for r in range(world)]
        assert all(x.dtype == dtype and x.shape == (per, 64) for x in shares)
        assert np.array_equal(np.concatenate(shares).astype(np.int64), whole)


def test_loader_gives_the_synchronous_rows_in_and_out_of_order():
    s = _stream()
    rows = slice(4, 8)
    fast = Loader(s, 3, 8, 63, rows, 5000, pin=False, last_step=10)
    slow = Loader(s, 3, 8, 63, rows, 5000, pin=False, last_step=10, prefetch=False)
    try:
        # in order, then a WSD branch re-training steps 4..6, then the main run again
        for step in (1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 10):
            got, want = fast.get(step), slow.get(step)
            assert got.dtype == torch.uint16 and want.dtype == torch.int64
            assert torch.equal(got.long(), want)
            assert torch.equal(want, torch.from_numpy(s.sample(3, step, 8, 63)[rows]))
    finally:
        fast.close()
    assert fast.pool is None


def test_the_next_batch_is_drawn_on_another_thread():
    s = _stream()
    where = []
    loader = Loader(s, 0, 4, 31, slice(0, 4), 5000, pin=False, last_step=3)
    draw = loader.draw

    def traced(step):
        where.append((step, threading.current_thread() is threading.main_thread()))
        return draw(step)

    loader.draw = traced
    try:
        for step in (1, 2, 3):
            loader.get(step)
    finally:
        loader.close()
    # step 1 on the spot; 2 and 3 drawn ahead on the loader's thread; nothing past the last step
    assert where == [(1, True), (2, False), (3, False)]


def test_a_bad_id_fails_at_its_own_step():
    s = _stream()
    which, offs = s._positions(0, 2, 4, 32)  # where step 2's windows start
    arrays = [a.copy() for a in s.arrays]
    arrays[which[0]][offs[0]] = 6000
    bad = TokenStream(arrays, "train")
    assert bad.sample(0, 1, 4, 31).max() < 5000  # step 1 does not see it
    loader = Loader(bad, 0, 4, 31, slice(0, 4), 5000, pin=False, last_step=5)
    try:
        loader.get(1)  # step 2, drawn ahead meanwhile, fails there, but that is not step 1's error
        with pytest.raises(DataError, match=r"^data.vocab_size: the batch of step 2 holds token id 6000"):
            loader.get(2)
    finally:
        loader.close()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_share_is_page_locked():
    loader = Loader(_stream(), 0, 4, 31, slice(0, 4), 5000, pin=True, last_step=2)
    try:
        assert loader.get(1).is_pinned() and loader.get(2).is_pinned()
    finally:
        loader.close()

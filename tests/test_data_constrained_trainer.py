"""Data-constrained runs (data.unique_tokens, Muennighoff et al. 2023): the run repeats a
fixed prefix of the training split, records its epochs, resumes bit for bit, and refuses
impossible budgets with one line naming the field."""
import signal

import numpy as np
import pytest

from analysis.common import records
from analysis.common.errors import ConfigError
from scaling.data import corpus as D
from scaling.config import config_hash, from_overrides
from scaling.train.run import train
from trainer_testing import losses, start_train, tiny_overrides, wait_for_rows

U = 8192                  # unique tokens: 8 steps of 1,024 tokens make one epoch
EXTRA = (f"data.unique_tokens={U}", f"tokens={6 * U}", "ckpt_every_tokens=8192", "schedule.kind=wsd",
         f"schedule.branches=[{2 * U}]")


@pytest.fixture(scope="module")
def reference(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("dc") / "r"
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    return out


def test_the_run_repeats_the_first_u_tokens_and_records_its_epochs(cache, reference):
    s = records.read_summary(reference)
    assert s["status"] == "completed" and s["unique_tokens"] == U
    assert s["epochs"] == pytest.approx(6.0) and s["data"]["train_tokens"] == U
    rows = records.read_metrics(reference)
    assert [r["epochs"] for r in rows] == pytest.approx([r["tokens"] / U for r in rows])
    # the stream a run samples from is the split's first U tokens, in its fixed order
    cfg = from_overrides(tiny_overrides(cache, reference, *EXTRA))
    full = D.load_corpus(cfg.data, cache_dir=str(cache))
    kept = D.restrict_unique(full, cfg.data, cfg.seq_len, 6 * U)
    assert kept.train.n_tokens == U
    np.testing.assert_array_equal(np.concatenate(kept.train.arrays), np.concatenate(full.train.arrays)[:U])
    assert kept.val is full.val  # validation stays on the held-out documents
    windows = kept.train.sample(cfg.seed, 3, 8, cfg.seq_len)
    prefix = np.concatenate(full.train.arrays)[:U]
    for w in windows:  # every window lies inside the prefix
        starts = np.flatnonzero(prefix[: U - cfg.seq_len] == w[0])
        assert any(np.array_equal(prefix[i:i + len(w)], w) for i in starts)
    # each epoch draws other windows: the seeded sampler depends on the step
    assert not np.array_equal(kept.train.sample(cfg.seed, 1, 8, cfg.seq_len),
                              kept.train.sample(cfg.seed, 9, 8, cfg.seq_len))


def test_resume_after_sigkill_continues_the_same_epoch_bit_for_bit(cache, reference, tmp_path):
    out = tmp_path / "killed"
    proc = start_train(cache, out, EXTRA)
    wait_for_rows(proc, out, 28)  # inside the fourth epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    train(from_overrides(tiny_overrides(cache, out, *EXTRA)))
    assert losses(out) == losses(reference)
    assert losses(out, "epochs") == losses(reference, "epochs")
    assert [b["val_loss"] for b in records.read_branches(out)] == [b["val_loss"] for b in
                                                                   records.read_branches(reference)]


@pytest.mark.parametrize("extra, field, words", [
    (["data.unique_tokens=1e12", "tokens=2e12"], "data.unique_tokens", "exceed the training split"),
    (["data.unique_tokens=50", "tokens=8192"], "data.unique_tokens", "fewer than one training window"),
    ([f"data.unique_tokens={U}", "tokens=4096"], "data.unique_tokens", "nothing repeats"),
    ([f"data.unique_tokens={U}", "data.unique_fraction=0.1", "tokens=8192"], "data.unique_tokens", "not both"),
    (["data.unique_fraction=1.5", "tokens=8192"], "data.unique_fraction", "must lie in (0, 1]"),
    (["data.unique_tokens=-3", "tokens=8192"], "data.unique_tokens", "positive token count"),
])
def test_impossible_budgets_are_one_line_errors(cache, tmp_path, extra, field, words):
    with pytest.raises(ConfigError) as e:
        train(from_overrides(tiny_overrides(cache, tmp_path / "r", *extra)))
    msg = str(e.value)
    assert e.value.field == field and words in msg and "\n" not in msg and "(fix: " in msg
    assert not (tmp_path / "r" / records.METRICS_FILE).exists()


def test_ordinary_runs_keep_their_names_and_records(cache, tmp_path):
    base = tiny_overrides(cache, tmp_path / "a", "tokens=8192")
    assert config_hash(from_overrides(base)) == config_hash(from_overrides(base + ["data.unique_tokens=null"]))
    s = train(from_overrides(base))
    assert s["unique_tokens"] is None and "epochs" not in records.read_metrics(tmp_path / "a")[0]


def test_unique_tokens_per_param_sizes_u_to_the_model(cache, tmp_path):
    """data.unique_tokens_per_param: U is that many tokens per parameter (20 x f for a fraction
    f of a size's Chinchilla-optimal data, Hoffmann et al. 2022)."""
    from scaling import flops as F
    from scaling.config import resolve

    cfg = from_overrides(tiny_overrides(cache, tmp_path / "r", "tokens=65536", "data.unique_tokens_per_param=0.25"))
    s = train(cfg)
    n = F.count_params(resolve(cfg, 256).model)
    assert s["unique_tokens"] == int(0.25 * n) and s["epochs"] == pytest.approx(65536 / int(0.25 * n))

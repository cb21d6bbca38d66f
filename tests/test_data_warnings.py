"""Warnings about what a data source does to a plan: a preset much larger than its name
(the vocabulary's embeddings), and a budget of more than one pass over the corpus, from
the trainer and from a sweep's dry run."""
import json
import logging

import pytest

from analysis.common.text import si
from scaling.data import corpus as D
from scaling import flops as F
from scaling.app.cli import main as cli_main
from scaling.config import DataConfig, Tokenizer, from_overrides, model_args
from scaling.train.run import train
from trainer_testing import tiny_overrides

GPT2_VOCAB = 50257


def test_the_gpt2_vocabulary_makes_nano_a_3m_model_and_says_so():
    a = model_args(from_overrides(["model=nano"]), GPT2_VOCAB)
    n, nonemb = F.count_params(a), F.nonembedding_params(a)
    # the embedding table alone, tied with the head: 50,257 x 64 (Kaplan et al. 2020 leave it out of N)
    assert n - nonemb == GPT2_VOCAB * 64 and 3.2e6 < n < 3.4e6
    w = D.size_warning(a, n, nonemb)
    assert w and f"model=nano has {si(n)} parameters with a 50,257-token vocabulary" in w and "fix:" in w
    # the byte vocabulary keeps nano near its name: no warning; nor for a shape that is no preset
    byte = model_args(from_overrides(["model=nano"]), 256)
    assert D.size_warning(byte, F.count_params(byte), F.nonembedding_params(byte)) is None
    custom = model_args(from_overrides(["model=nano", "arch.d_model=32", "arch.n_heads=2"]), GPT2_VOCAB)
    assert D.size_warning(custom, F.count_params(custom), F.nonembedding_params(custom)) is None


def test_epochs_are_tokens_over_the_training_split():
    data = DataConfig()
    assert D.epochs_warning(1e6, 2_000_000, data) is None
    w = D.epochs_warning(3e6, 2_000_000, data)
    assert "1.5 epochs of data.source=stdlib's 2M training tokens" in w
    assert "at least 1.5 epochs" in D.epochs_warning(3e6, 2_000_000, data, exact=False)
    # a data-constrained run repeats on purpose; an unknown corpus size says nothing
    assert D.epochs_warning(3e6, 2_000_000, DataConfig(unique_tokens=1e6)) is None
    assert D.epochs_warning(3e6, None, data) is None


@pytest.mark.parametrize("tokenizer", ["byte", "bpe"])
def test_the_corpus_size_is_known_before_tokenizing(tmp_path, tokenizer):
    data = DataConfig(max_files=40, val_frac=0.2, cache_dir=str(tmp_path / "cache"), tokenizer=Tokenizer(tokenizer),
                      vocab_size=300 if tokenizer == "bpe" else None)
    before, exact = D.train_tokens_estimate(data)
    real = D.load_corpus(data).train.n_tokens
    if tokenizer == "byte":
        assert exact and before == real  # bytes plus one separator per document
    else:
        assert not exact and before > real  # bytes bound the BPE tokens from above
    assert D.train_tokens_estimate(data) == (real, True)  # the cache, once built, gives the count


def test_the_trainer_warns_when_the_budget_repeats_the_corpus(cache, tmp_path, caplog):
    over = tiny_overrides(cache, tmp_path / "r", "data.max_bytes=40000", "tokens=40960", "log_every=8")
    with caplog.at_level(logging.WARNING, logger="scaling.train.run"):
        s = train(from_overrides(over))
    n_train = s["data"]["train_tokens"]
    assert 40960 > n_train
    (w,) = [r.getMessage() for r in caplog.records if "epochs of data.source" in r.getMessage()]
    assert f"{40960 / n_train:.3g} epochs" in w


def test_the_dry_run_warns_about_size_and_epochs(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    bpe = ["data.tokenizer=bpe", f"data.vocab_size={GPT2_VOCAB}", "data.max_bytes=300000", "model=nano,micro",
           "tokens=2e6", f"data.cache_dir={tmp_path / 'cache'}"]
    # --no-estimate: the time probe (seconds for a 50k vocabulary) is test_sweep_estimate's subject
    assert cli_main(["sweep", "--dry-run", "--no-estimate", "--json", "--out", out, "demo", *bpe]) == 0
    plan = json.loads(capsys.readouterr().out)
    bound = D.train_tokens_estimate(from_overrides(bpe[:3] + [f"data.cache_dir={tmp_path / 'cache'}"]).data)[0]
    assert all(abs(r["epochs"] - r["tokens"] / bound) < 1e-12 for r in plan["runs"])
    warnings = plan["warnings"]
    assert any(w.startswith("model=nano has 3.32M parameters with a 50,257-token vocabulary") for w in warnings)
    (ep,) = [w for w in warnings if "epochs" in w]
    assert ep.startswith("2 of 2 runs plan more tokens (2M) than the corpus's <= ") and "at least" in ep
    assert not (tmp_path / "sweep").exists()  # a dry run writes nothing
    # the table form prints the same warnings
    assert cli_main(["sweep", "--dry-run", "--no-estimate", "--out", out, "demo", *bpe]) == 0
    text = capsys.readouterr().out
    assert all(f"warning: {w}" in text for w in warnings)


def test_a_plan_within_the_corpus_warns_about_nothing(tmp_path, capsys):
    assert cli_main(["sweep", "--dry-run", "--json", "--out", str(tmp_path / "s"), "demo", "model=nano",
                     "tokens=1e5"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["warnings"] == [] and plan["runs"][0]["epochs"] < 1


def test_si_never_prints_an_exponent_on_a_unit():
    # validate's table once printed an interval end as "1.16e+03T": a value past the largest
    # unit is plain scientific, and one that rounds up to 1000 of a unit takes the next unit
    assert [si(x) for x in (999.7, 9.996e11, 1.16e15, 4.2e12, 123456, 0.5)] == \
        ["1k", "1T", "1.16e+15", "4.2T", "123k", "0.5"]

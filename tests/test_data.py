"""Corpus, split, tokenizers, token cache, shards and batch sampling."""
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.common import records
from analysis.common.errors import ConfigError, DataError
from scaling.data import corpus as D
from scaling.config import DataConfig, Tokenizer


def cfg(tmp_path, **kw) -> DataConfig:
    base = dict(max_files=40, val_frac=0.2, cache_dir=str(tmp_path / "cache"))
    base.update(kw)
    return DataConfig(**base)


def test_stdlib_corpus_excludes_site_packages_and_tests_by_default():
    docs = D.list_documents(DataConfig())
    ids = [d.id for d in docs]
    assert len(docs) > 300 and sum(d.size for d in docs) > 5e6  # real text, megabytes of it
    assert "os.py" in ids and "json/decoder.py" in ids
    assert not any(part in ("site-packages", "test", "tests") for i in ids for part in i.split("/"))
    assert all(i.endswith(".py") for i in ids)
    with_tests = D.list_documents(DataConfig(include_tests=True))
    assert len(with_tests) > len(docs)


def test_validation_split_shares_no_file_with_training(tmp_path):
    c = cfg(tmp_path, max_files=None, max_bytes=3_000_000)
    docs = D.select_documents(D.list_documents(c), c.max_files, c.max_bytes)
    train = {d.id for d in docs if not D.is_validation(d.id, c.val_frac)}
    val = {d.id for d in docs if D.is_validation(d.id, c.val_frac)}
    assert train and val and not train & val
    corpus = D.load_corpus(c)
    meta = corpus.meta["splits"]
    # every byte of each split is accounted for by that split's files (+1 separator per file)
    by_id = {d.id: d for d in docs}
    assert meta["train"]["tokens"] == sum(by_id[i].size + 1 for i in train) == corpus.train.n_tokens
    assert meta["val"]["tokens"] == sum(by_id[i].size + 1 for i in val) == corpus.val.n_tokens
    # ... and the validation tokens are exactly the validation files' bytes
    val_bytes = b"".join(by_id[i].read() + b"\0" for i in sorted(val))
    assert np.array_equal(np.asarray(corpus.val.arrays[0]), np.frombuffer(val_bytes, dtype=np.uint8))
    # the split of a file depends on its path alone, not on which other files are present
    assert all(D.is_validation(i, c.val_frac) for i in val)
    assert 0.1 < len(val) / len(docs) < 0.35


def test_split_is_stable_under_subsetting(tmp_path):
    full = D.list_documents(DataConfig())
    sub = D.select_documents(full, 50, None)
    assert len(sub) == 50
    assert D.select_documents(full, 50, None) == sub  # deterministic
    in_full = {d.id: D.is_validation(d.id, 0.05) for d in full}
    assert all(D.is_validation(d.id, 0.05) == in_full[d.id] for d in sub)


def test_token_cache_is_reused(tmp_path, monkeypatch):
    c = cfg(tmp_path)
    first = D.load_corpus(c)
    assert first.meta["dtype"] == "uint16" and first.meta["vocab_size"] == 256
    header = json.loads((tmp_path / "cache" / "tokens" / first.meta["cache"].split("/")[-1] / "meta.json").read_text())
    assert header["splits"]["train"]["sha256"] and header["tokenizer"] == "byte"

    def boom(*a, **k):
        raise AssertionError("retokenized")

    monkeypatch.setattr(D, "build_token_cache", boom)
    second = D.load_corpus(c)
    assert second.meta["cache"] == first.meta["cache"]
    assert isinstance(second.train.arrays[0], np.memmap)
    # a changed tokenizer setting is a different cache
    with pytest.raises(AssertionError, match="retokenized"):
        D.load_corpus(cfg(tmp_path, val_frac=0.3))


def test_batches_depend_only_on_seed_and_step(tmp_path):
    corpus = D.load_corpus(cfg(tmp_path))
    a = corpus.train.sample(seed=0, step=7, n=6, seq_len=32)
    b = corpus.train.sample(seed=0, step=7, n=6, seq_len=32)
    assert a.shape == (6, 33) and a.dtype == np.int64 and np.array_equal(a, b)
    assert not np.array_equal(a, corpus.train.sample(seed=0, step=8, n=6, seq_len=32))
    assert not np.array_equal(a, corpus.train.sample(seed=1, step=7, n=6, seq_len=32))
    # each window is a contiguous slice of the training stream
    stream = np.asarray(corpus.train.arrays[0])
    for w in a:
        hits = np.flatnonzero(stream[: len(stream) - 32] == w[0])
        assert any(np.array_equal(stream[h:h + 33], w) for h in hits)


def test_validation_windows_are_fixed_and_sized(tmp_path):
    corpus = D.load_corpus(cfg(tmp_path))
    w = corpus.val.windows(seq_len=64, max_tokens=4096)
    assert w.shape == (64, 65)
    assert np.array_equal(w, corpus.val.windows(seq_len=64, max_tokens=4096))
    assert np.array_equal(w[1, 0], w[0, 64])  # consecutive windows: each target predicted once


def test_bpe_trains_on_train_split_caches_and_round_trips(tmp_path):
    c = cfg(tmp_path, tokenizer=Tokenizer.bpe, vocab_size=400, max_files=15)
    corpus = D.load_corpus(c)
    assert corpus.vocab_size == 400 and corpus.meta["dtype"] == "uint16"
    tok_path = tmp_path / "cache" / "tokens" / corpus.meta["cache"].split("/")[-1] / "tokenizer.json"
    tok = D.load_tokenizer(tok_path)
    assert tok.get_vocab_size() == 400 and tok.token_to_id(D.EOT) == 0
    ids = np.asarray(corpus.val.arrays[0])
    first_doc = ids[: int(np.argmax(ids == 0))]
    text = tok.decode(first_doc.tolist())
    assert "def " in text or "import " in text  # real Python source comes back
    assert corpus.train.n_tokens < corpus.meta["splits"]["train"]["bytes"] / 1.5  # it compresses


def test_bpe_counts_undecodable_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text("hello world\n" * 200)
    (src / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1") * 200)
    c = DataConfig(source=str(src), tokenizer=Tokenizer.bpe, vocab_size=300, val_frac=0.01,
                   cache_dir=str(tmp_path / "cache"))
    meta = D.load_corpus(c).meta
    assert meta["splits"]["train"]["undecodable_documents"] + meta["splits"]["val"]["undecodable_documents"] == 1


def test_text_directory_and_single_file_sources(tmp_path):
    src = tmp_path / "texts"
    (src / "sub").mkdir(parents=True)
    for i in range(30):
        (src / "sub" / f"doc{i}.txt").write_text(f"document {i}\n" * 50)
    (src / "ignored.bin.bak").write_text("x")
    docs = D.list_documents(DataConfig(source=str(src)))
    assert len(docs) == 30 and docs[0].id.startswith("sub/doc")
    big = tmp_path / "one.txt"
    big.write_text(("paragraph " * 1000 + "\n\n") * 40)  # ~440 kB
    docs = D.list_documents(DataConfig(source=str(big)))
    assert len(docs) > 5 and sum(d.size for d in docs) == big.stat().st_size
    assert all(d.read().endswith(b"\n\n") for d in docs)


def test_empty_and_missing_sources_fail_naming_the_field(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="^data.source: no documents"):
        D.load_corpus(cfg(tmp_path, source=str(tmp_path / "empty")))
    with pytest.raises(DataError, match="^data.source: no such file"):
        D.load_corpus(cfg(tmp_path, source=str(tmp_path / "nope")))


@pytest.mark.parametrize("layout", ["llm.c", "toolkit"])
def test_shards_round_trip(tmp_path, layout):
    rng = np.random.default_rng(0)
    train_tokens, val_tokens = rng.integers(0, 1000, 5000), rng.integers(0, 1000, 800)
    D.write_shard(tmp_path / "s_train_000.bin", train_tokens[:3000], 1000, layout)
    D.write_shard(tmp_path / "s_train_001.bin", train_tokens[3000:], 1000, layout)
    D.write_shard(tmp_path / "s_val_000.bin", val_tokens, 1000, layout)
    corpus = D.load_corpus(DataConfig(source=str(tmp_path), vocab_size=1000 if layout == "llm.c" else None))
    assert corpus.vocab_size == 1000 and corpus.train.n_tokens == 5000 and corpus.val.n_tokens == 800
    assert np.array_equal(np.concatenate([np.asarray(a) for a in corpus.train.arrays]), train_tokens)
    batch = corpus.train.sample(0, 1, 4, 16)
    assert batch.max() < 1000


def test_nanogpt_bare_uint16_files(tmp_path):
    np.arange(4000, dtype=np.uint16).tofile(tmp_path / "train.bin")
    np.arange(600, dtype=np.uint16).tofile(tmp_path / "val.bin")
    corpus = D.load_corpus(DataConfig(source=str(tmp_path / "*.bin"), vocab_size=4096))
    assert corpus.meta["layouts"] == ["nanoGPT"] and corpus.val.n_tokens == 600


def test_vocab_larger_than_a_bin_header_allows(tmp_path):
    D.write_shard(tmp_path / "a_train.bin", np.arange(100), 50000, "llm.c")  # uint16 header (magic 20240520)
    D.write_shard(tmp_path / "a_val.bin", np.arange(100), 50000, "llm.c")
    with pytest.raises(ConfigError, match=r"^data.vocab_size: vocab_size=100000 exceeds .*16-bit"):
        D.load_corpus(DataConfig(source=str(tmp_path), vocab_size=100000))
    with pytest.raises(ConfigError, match=r"^data.vocab_size: the shards hold token id 99"):
        D.load_corpus(DataConfig(source=str(tmp_path), vocab_size=50))
    with pytest.raises(ConfigError, match=r"^data.vocab_size: pre-tokenized shards"):
        D.load_corpus(DataConfig(source=str(tmp_path)))


def test_shards_need_a_validation_file_and_a_sound_header(tmp_path):
    D.write_shard(tmp_path / "only_train.bin", np.arange(100), 256, "llm.c")
    with pytest.raises(DataError, match="no validation shard"):
        D.load_corpus(DataConfig(source=str(tmp_path), vocab_size=256))
    raw = (tmp_path / "only_train.bin").read_bytes()
    (tmp_path / "x_val.bin").write_bytes(raw[:-20])  # header promises more than is there
    with pytest.raises(DataError, match="truncated"):
        D.load_corpus(DataConfig(source=str(tmp_path), vocab_size=256))


def test_byte_tokenizer_rejects_another_vocab(tmp_path):
    with pytest.raises(ConfigError, match="^data.vocab_size"):
        D.load_corpus(cfg(tmp_path, vocab_size=300))


def test_a_run_on_shards_is_named_from_the_vocabulary_their_headers_record(tmp_path, monkeypatch):
    # toolkit-layout shards record their vocabulary in .json headers; with no data.vocab_size
    # and a tokens_per_param budget (tokens follow from the parameter count, which the
    # vocabulary sets), the run directory's name and summary.run_name must agree: train()
    # resolves the Plan once and names both from it (the directory once came from a
    # separate resolve with a guessed vocabulary of 256)
    from scaling.config import default_run_name, from_overrides, resolve
    from scaling.train.run import train

    rng = np.random.default_rng(0)
    D.write_shard(tmp_path / "d_train.bin", rng.integers(0, 1000, 60000), 1000, "toolkit")
    D.write_shard(tmp_path / "d_val.bin", rng.integers(0, 1000, 8000), 1000, "toolkit")
    assert D.expected_vocab(DataConfig(source=str(tmp_path))) == 1000
    monkeypatch.chdir(tmp_path)
    cfg = from_overrides(["model=atto", "tokens_per_param=1", f"data.source={tmp_path}", "seq_len=32",
                          "batch_tokens=1024", "eval_count=2", "data.val_tokens=1024", "progress=none",
                          "device=cpu", "threads=1"])
    # the case is one where the vocabulary changes the name
    assert default_run_name(cfg, resolve(cfg, 1000)) != default_run_name(cfg, resolve(cfg, 256))
    summary = train(cfg)
    assert summary.run_dir == Path("runs") / summary["run_name"]
    assert summary["run_name"] == default_run_name(cfg, resolve(cfg, 1000))
    assert (tmp_path / summary.run_dir / "summary.json").exists()
    assert records.read_summary(tmp_path / summary.run_dir)["run_name"] == summary["run_name"]


def test_a_run_on_shards_that_record_no_vocabulary_fails_before_touching_its_directory(tmp_path, monkeypatch):
    # llm.c-layout shards carry no vocabulary: without data.vocab_size the Plan cannot be
    # resolved, and train() says so, naming the field, before the run directory is created
    from scaling.config import from_overrides
    from scaling.train.run import train

    rng = np.random.default_rng(0)
    D.write_shard(tmp_path / "d_train.bin", rng.integers(0, 500, 8000), 500, "llm.c")
    D.write_shard(tmp_path / "d_val.bin", rng.integers(0, 500, 2000), 500, "llm.c")
    assert D.expected_vocab(DataConfig(source=str(tmp_path))) is None
    monkeypatch.chdir(tmp_path)
    cfg = from_overrides(["model=atto", "tokens_per_param=1", f"data.source={tmp_path}", "seq_len=32",
                          "batch_tokens=1024", "progress=none", "device=cpu", "threads=1"])
    with pytest.raises(ConfigError, match="^data.vocab_size: pre-tokenized shards do not record"):
        train(cfg)
    assert not (tmp_path / "runs").exists()

"""Training data: the built-in corpus, tokenizers and the token cache; the entry point
:func:`load_corpus`. Token streams and batches are in :mod:`scaling.data.tokens`, pre-tokenized
shards in :mod:`scaling.data.shards` (both re-exported here).

Sources (``data.source``):

``stdlib`` (default)
    The ``.py`` files of the running interpreter's standard library: real text, about
    12 MB (31 MB with the ``test/`` packages), on every machine, no download.
    ``site-packages`` is never included.
a text file or a directory
    A directory contributes every file whose suffix is in ``data.extensions``, each file
    one document. A single file is cut into documents of about 64 KiB at blank lines.
pre-tokenized ``.bin`` shards
    A ``.bin`` file, a directory of them, or a glob. Files whose name contains ``val``
    are the validation split. Three layouts are read: llm.c's (a header of 256 int32:
    magic 20240520 with uint16 tokens, or 20240801 with uint32, then the token count,
    then the tokens), nanoGPT's (bare uint16 tokens, no header), and this toolkit's own
    cache files (bare tokens with a ``.json`` header beside them).

Documents are split into train and validation by a hash of their path relative to the
source root, so the split is the same on every machine and validation text is never
trained on. ``max_files``/``max_bytes`` take a deterministic subset (ordered by a second,
independent hash) for quick runs and tests.

Tokenizers: ``byte`` works on raw bytes (vocabulary 256) and so reads any file;
documents are joined with a NUL byte. ``bpe`` trains a byte-level BPE with the HF
``tokenizers`` library on the training split only, decoding files as UTF-8 with
``errors="replace"`` (the count of files that needed it is kept in the header), and
joins documents with an ``<|endoftext|>`` token (id 0).

Bytes per token: a text corpus knows how many bytes of text each token id stands for
(``Corpus.token_bytes``: 1 for every byte token, the NUL separator included; a BPE token's
UTF-8 bytes, none for ``<|endoftext|>``), so the trainer can report validation loss in bits
per byte. Pre-tokenized shards carry no text, so there it is unknown (None).

Token cache: ``<cache>/tokens/<key>/{train,val}.bin`` (uint16 when the vocabulary fits,
else uint32) with ``meta.json`` describing tokenizer, dtype, counts and a content hash,
and ``tokenizer.json`` for BPE. The key hashes the file list (paths, sizes, mtimes) and
the tokenizer settings, so a second run maps the same files without retokenizing. The
cache directory is built under a temporary name and renamed into place, so concurrent
jobs never see half a cache.

Batches: the windows of step ``s`` are drawn from ``numpy.random.default_rng((seed, s))``
alone, so a resumed run, or a run on any number of processes, sees exactly the batches
an uninterrupted single-process run would.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from analysis.common.errors import ConfigError, DataError
from analysis.common.records import atomic_write_json

from .shards import (LLMC_HEADER_INTS, LLMC_MAGIC, load_shards, open_shard, recorded_vocab,  # noqa: F401
                     shard_paths, shards_vocab, write_shard)
from .tokens import Corpus, TokenStream, predicted_bytes, token_dtype  # noqa: F401
from analysis.common.text import si
from scaling import flops as F

CACHE_VERSION = 1
DOC_SEP_BYTE = 0              # joins documents for the byte tokenizer
EOT = "<|endoftext|>"         # joins documents for BPE (id 0)
DEFAULT_BPE_VOCAB = 4096
TEXT_CHUNK_BYTES = 64 * 1024  # a single text file is cut into documents of about this size

_TEST_DIRS = {"test", "tests", "idle_test"}
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


# --------------------------------------------------------------------------- paths

def cache_root(cache_dir: Optional[str] = None) -> Path:
    """``data.cache_dir``, else ``$SCALING_CACHE``, else ``~/.cache/scaling-toolkit``."""
    root = cache_dir or os.environ.get("SCALING_CACHE") or os.path.join("~", ".cache", "scaling-toolkit")
    return Path(os.path.expanduser(root))


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _hash_frac(salt: str, doc_id: str) -> float:
    """A uniform number in [0, 1) fixed by the document id (and the salt)."""
    h = hashlib.sha1(f"{salt}:{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def is_validation(doc_id: str, val_frac: float) -> bool:
    """The train/validation split: a hash of the document's relative path."""
    return _hash_frac("split", doc_id) < val_frac


# --------------------------------------------------------------------------- documents

@dataclass(frozen=True)
class Document:
    """One document: ``size`` bytes of ``path`` from ``start``; ``id`` is machine-independent."""

    id: str
    path: Path
    start: int
    size: int
    mtime_ns: int

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read(self.size)


def list_documents(cfg) -> List[Document]:
    """Every document of a text source (``stdlib``, a file or a directory), sorted by id,
    before the ``max_files``/``max_bytes`` subset. ``cfg`` is a DataConfig."""
    if cfg.source == "stdlib":
        root = stdlib_root()
        docs = _dir_documents(root, [".py"], skip_tests=not cfg.include_tests)
    else:
        root = Path(os.path.expanduser(cfg.source))
        if root.is_dir():
            docs = _dir_documents(root, list(cfg.extensions), skip_tests=False)
        elif root.is_file():
            docs = _file_documents(root)
        else:
            raise DataError("no such file or directory", field="data.source",
                            fix="point data.source at a text file, a directory, .bin shards, or use stdlib")
    if not docs:
        raise DataError(f"no documents found under {cfg.source}", field="data.source",
                        fix=f"check the path; directories are searched for {', '.join(cfg.extensions)} "
                            "(set data.extensions)")
    return docs


def _dir_documents(root: Path, extensions: List[str], skip_tests: bool) -> List[Document]:
    docs = []
    exts = tuple(e.lower() for e in extensions)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames
                             if d not in _SKIP_DIRS and not (skip_tests and d in _TEST_DIRS))
        for name in sorted(filenames):
            if not name.lower().endswith(exts):
                continue
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except OSError:
                continue
            if st.st_size:
                docs.append(Document((rel_dir / name).as_posix(), p, 0, st.st_size, st.st_mtime_ns))
    return sorted(docs, key=lambda d: d.id)


def _file_documents(path: Path) -> List[Document]:
    """Cut one text file at blank lines into documents of about TEXT_CHUNK_BYTES."""
    data = path.read_bytes()
    st = path.stat()
    docs, start, i = [], 0, 0
    while start < len(data):
        end = min(len(data), start + TEXT_CHUNK_BYTES)
        if end < len(data):
            cut = data.find(b"\n\n", end)
            end = len(data) if cut < 0 else cut + 2
        docs.append(Document(f"{path.name}#{i}", path, start, end - start, st.st_mtime_ns))
        start, i = end, i + 1
    return docs


def select_documents(docs: List[Document], max_files: Optional[int], max_bytes: Optional[int]) -> List[Document]:
    """A deterministic subset: documents ordered by a hash independent of the split's."""
    if max_files is None and max_bytes is None:
        return docs
    order = sorted(docs, key=lambda d: _hash_frac("subset", d.id))
    out, total = [], 0
    for d in order:
        if max_files is not None and len(out) >= max_files:
            break
        if max_bytes is not None and total >= max_bytes:
            break
        out.append(d)
        total += d.size
    return sorted(out, key=lambda d: d.id)


# --------------------------------------------------------------------------- tokenizers

def _bpe_vocab(cfg) -> int:
    v = cfg.vocab_size or DEFAULT_BPE_VOCAB
    if v < 258:
        raise ConfigError(f"BPE vocabulary {v} is too small", field="data.vocab_size",
                          fix="use at least 258 (256 bytes, the end-of-text token and one merge)")
    return v


def train_bpe(docs: List[Document], vocab_size: int, path: Path):
    """Train a byte-level BPE on ``docs`` and save it to ``path``; returns the tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((_decode(d.read())[0] for d in docs), trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return tok


def _decode(b: bytes) -> tuple[str, bool]:
    """UTF-8 text of a document, and whether undecodable bytes had to be replaced."""
    try:
        return b.decode("utf-8"), False
    except UnicodeDecodeError:
        return b.decode("utf-8", errors="replace"), True


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def bpe_token_bytes(tok, vocab_size: int) -> Optional[np.ndarray]:
    """Bytes of text each id of a byte-level BPE stands for (for bits per byte): the
    byte-level alphabet writes every byte as one character, so a token's length in
    characters is its length in bytes. The end-of-text token that joins documents is no
    text and counts none, as do ids the tokenizer never produces. None if a token is not
    written in that alphabet (not a byte-level BPE: its bytes are unknown)."""
    from tokenizers import pre_tokenizers

    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    out = np.zeros(vocab_size, dtype=np.int64)
    for token, i in tok.get_vocab(with_added_tokens=True).items():
        if token == EOT or not 0 <= i < vocab_size:
            continue
        if not set(token) <= alphabet:
            return None
        out[i] = len(token)
    return out


# --------------------------------------------------------------------------- cache

def _cache_key(cfg, docs: List[Document]) -> str:
    ident = {
        "version": CACHE_VERSION,
        "source": cfg.source if cfg.source == "stdlib" else os.path.abspath(os.path.expanduser(cfg.source)),
        "tokenizer": cfg.tokenizer.value,
        "vocab": _bpe_vocab(cfg) if cfg.tokenizer.value == "bpe" else 256,
        "val_frac": cfg.val_frac,
        "docs": [(d.id, d.start, d.size, d.mtime_ns) for d in docs],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def _tilde(path: Path) -> str:
    """``path`` with the home directory written as ~ (shorter, and shareable in logs)."""
    home = os.path.expanduser("~")
    p = str(path)
    return "~" + p[len(home):] if home not in ("", "/") and p.startswith(home + os.sep) else p


def _log(msg: str) -> None:
    import logging

    logging.getLogger("scaling.data.corpus").info(msg)


def build_token_cache(cfg, docs: List[Document], dest: Path) -> dict:
    """Tokenize ``docs`` into ``dest`` (train.bin, val.bin, meta.json); returns the header."""
    t0 = time.time()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as e:
        raise _cache_write_error(dest, e) from None
    try:
        splits = {"train": [d for d in docs if not is_validation(d.id, cfg.val_frac)],
                  "val": [d for d in docs if is_validation(d.id, cfg.val_frac)]}
        if cfg.tokenizer.value == "bpe":
            vocab = _bpe_vocab(cfg)
            if not splits["train"]:
                raise DataError("the training split is empty", field="data.val_frac",
                                fix="lower data.val_frac or add documents")
            tok = train_bpe(splits["train"], vocab, tmp / "tokenizer.json")
            eot = tok.token_to_id(EOT)

            def encode(batch):
                texts, bad = zip(*(_decode(d.read()) for d in batch))
                ids = [e.ids for e in tok.encode_batch(list(texts))]
                return ids, sum(bad), [eot]
        else:
            vocab = 256

            def encode(batch):
                return [np.frombuffer(d.read(), dtype=np.uint8) for d in batch], 0, [DOC_SEP_BYTE]

        dtype = token_dtype(vocab)
        meta = {"cache_version": CACHE_VERSION, "tokenizer": cfg.tokenizer.value, "vocab_size": vocab,
                "dtype": np.dtype(dtype).name, "source": cfg.source,
                "doc_separator": EOT if cfg.tokenizer.value == "bpe" else DOC_SEP_BYTE, "splits": {}}
        for split, split_docs in splits.items():
            h, n_tok, n_bad = hashlib.sha256(), 0, 0
            with open(tmp / f"{split}.bin", "wb") as f:
                for i in range(0, len(split_docs), 64):
                    ids, bad, sep = encode(split_docs[i:i + 64])
                    n_bad += bad
                    for doc_ids in ids:
                        arr = np.concatenate([np.asarray(doc_ids), sep]).astype(dtype)
                        buf = arr.tobytes()
                        f.write(buf)
                        h.update(buf)
                        n_tok += len(arr)
            meta["splits"][split] = {"documents": len(split_docs), "tokens": n_tok,
                                     "bytes": int(sum(d.size for d in split_docs)),
                                     "undecodable_documents": n_bad, "sha256": h.hexdigest()}
        meta["build_seconds"] = round(time.time() - t0, 2)
        atomic_write_json(tmp / "meta.json", meta)
        try:
            os.rename(tmp, dest)
        except OSError:  # another job finished the same cache first: use theirs
            if not (dest / "meta.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return json.loads((dest / "meta.json").read_text())
        _log(f"tokenized {sum(len(v) for v in splits.values())} documents in {meta['build_seconds']} s "
             f"-> {_tilde(dest)}")
        return meta
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise _cache_write_error(dest, e) from None
        raise


def _cache_write_error(dest: Path, e: OSError) -> DataError:
    return DataError(f"cannot write the token cache under {_tilde(dest.parent)} ({e.strerror or e})",
                     field="data.cache_dir", fix="point data.cache_dir (or $SCALING_CACHE) at a writable "
                     "directory with free space")


def _open_cache(dest: Path) -> Optional[tuple[dict, dict]]:
    """The cache's header and memory maps, or None if it is missing or inconsistent."""
    try:
        meta = json.loads((dest / "meta.json").read_text())
        dtype = np.dtype(meta["dtype"])
        arrays = {}
        for split, info in meta["splits"].items():
            path = dest / f"{split}.bin"
            if path.stat().st_size != info["tokens"] * dtype.itemsize:
                return None
            arrays[split] = (np.memmap(path, dtype=dtype, mode="r") if info["tokens"]
                             else np.zeros(0, dtype=dtype))
        return meta, arrays
    except (OSError, ValueError, KeyError):
        return None


def load_text_corpus(cfg, cache_dir: Optional[str] = None, build: bool = True) -> Corpus:
    """Tokenize (or map from the cache) a text source. ``build=False`` waits for another
    process (rank 0) to have built it."""
    docs = select_documents(list_documents(cfg), cfg.max_files, cfg.max_bytes)
    if cfg.tokenizer.value == "byte" and cfg.vocab_size not in (None, 256):
        raise ConfigError(f"the byte tokenizer has 256 symbols, not {cfg.vocab_size}", field="data.vocab_size",
                          fix="leave data.vocab_size unset, or use data.tokenizer=bpe")
    dest = cache_root(cache_dir or cfg.cache_dir) / "tokens" / _cache_key(cfg, docs)
    opened = _open_cache(dest)
    if opened is None:
        if build:
            build_token_cache(cfg, docs, dest)
        opened = _open_cache(dest)
        if opened is None:
            raise DataError(f"token cache {dest} is missing or damaged", field="data.cache_dir",
                            fix="delete that directory and rerun")
    meta, arrays = opened
    meta = dict(meta, cache=str(dest))
    train, val = TokenStream([arrays["train"]], "train"), TokenStream([arrays["val"]], "validation")
    if train.n_tokens == 0:
        raise DataError("the training split is empty", field="data.val_frac",
                        fix="lower data.val_frac or add documents")
    vocab = int(meta["vocab_size"])
    if meta["tokenizer"] == "bpe":
        token_bytes = bpe_token_bytes(load_tokenizer(dest / "tokenizer.json"), vocab)
    else:  # one byte per token, the NUL that joins documents included
        token_bytes = np.ones(vocab, dtype=np.int64)
    return Corpus(train, val, vocab, meta, token_bytes)


# --------------------------------------------------------------------------- entry point

def expected_vocab(cfg) -> Optional[int]:
    """The vocabulary a DataConfig will produce, known before reading any data, or None
    (pre-tokenized shards that do not say)."""
    if cfg.tokenizer.value == "bpe":
        return _bpe_vocab(cfg)
    if cfg.source != "stdlib" and cfg.vocab_size is None:
        paths = shard_paths(cfg.source)
        if paths:
            return recorded_vocab(paths)  # None: the shards do not say
    return cfg.vocab_size or 256


def data_vocab(cfg) -> int:
    """The vocabulary the data will have, known before any token is read: what
    :func:`expected_vocab` says, or, for shards that record none and no
    ``data.vocab_size``, the ConfigError loading them would raise later."""
    vocab = expected_vocab(cfg)
    return vocab if vocab is not None else shards_vocab(cfg, shard_paths(cfg.source))


def load_corpus(cfg, cache_dir: Optional[str] = None, build: bool = True) -> Corpus:
    """The train and validation token streams for a DataConfig."""
    if cfg.source != "stdlib":
        shards = shard_paths(cfg.source)
        if shards:
            return load_shards(cfg, shards)
    if not 0 < cfg.val_frac < 1:
        raise ConfigError(f"must lie strictly between 0 and 1, got {cfg.val_frac}", field="data.val_frac",
                          fix="e.g. data.val_frac=0.05")
    return load_text_corpus(cfg, cache_dir=cache_dir, build=build)


def unique_budget(cfg, n_train: int, n_params: Optional[int] = None) -> Optional[int]:
    """U, the unique training tokens a data-constrained run may see (``data.unique_tokens``,
    ``data.unique_fraction`` of the training split, or ``data.unique_tokens_per_param`` times
    the model's parameters), or None for an ordinary run."""
    u, frac, upp = cfg.unique_tokens, cfg.unique_fraction, getattr(cfg, "unique_tokens_per_param", None)
    given = [k for k, v in (("data.unique_tokens", u), ("data.unique_fraction", frac),
                            ("data.unique_tokens_per_param", upp)) if v is not None]
    if len(given) > 1:
        raise ConfigError(f"give one of {' and '.join(given)}, not both", field=given[0], fix="drop all but one")
    if upp is not None:
        if not upp > 0:
            raise ConfigError(f"must be positive, got {upp}", field="data.unique_tokens_per_param",
                              fix="e.g. data.unique_tokens_per_param=5 (a quarter of Chinchilla's 20 per parameter)")
        u = float(upp) * float(n_params)
    if frac is not None:
        if not 0 < frac <= 1:
            raise ConfigError(f"must lie in (0, 1], got {frac}", field="data.unique_fraction",
                              fix="e.g. data.unique_fraction=0.1 (a tenth of the training split)")
        return max(1, int(frac * n_train))
    if u is None:
        return None
    if not u >= 1:
        raise ConfigError(f"must be a positive token count, got {u}", field="data.unique_tokens",
                          fix="e.g. data.unique_tokens=1e6")
    if u > n_train:
        raise ConfigError(f"{u:.4g} unique tokens exceed the training split's {n_train} tokens",
                          field="data.unique_tokens",
                          fix=f"give at most {n_train} (or data.unique_fraction), or a larger corpus")
    return int(u)


def restrict_unique(corpus: Corpus, cfg, seq_len: int, budget_tokens: int, n_params: Optional[int] = None) -> Corpus:
    """The corpus a data-constrained run trains on: the first U tokens of the training split in
    its fixed document order (whole documents, the last one cut at U), repeated as the budget
    needs; the batch sampler draws fresh random windows from them every step, so each epoch
    sees them in a new, seeded order. Validation keeps the held-out documents, which the
    training split never contains. Unchanged for an ordinary run."""
    u = unique_budget(cfg, corpus.train.n_tokens, n_params)
    if u is None:
        return corpus
    if u < seq_len + 1:
        raise ConfigError(f"{u} unique tokens are fewer than one training window of {seq_len + 1}",
                          field="data.unique_tokens", fix=f"give at least {seq_len + 1}, or lower seq_len")
    if budget_tokens < u:
        raise ConfigError(f"the budget of {budget_tokens} tokens is below the {u} unique tokens, so nothing "
                          "repeats", field="data.unique_tokens",
                          fix="raise tokens to a multiple of data.unique_tokens, or drop data.unique_tokens")
    train = corpus.train.head(u)
    meta = dict(corpus.meta, unique_tokens=u, train_tokens_full=corpus.train.n_tokens)
    return Corpus(train, corpus.val, corpus.vocab_size, meta, corpus.token_bytes)



# --------------------------------------------------------------------------- size warnings

#: A preset whose total parameter count is this many times its non-embedding count (the
#: size its name gives) is mostly embedding table: a law fitted in total parameters then
#: describes the vocabulary more than the model (Kaplan et al. 2020, Sec. 3.1, count N
#: without embeddings for this reason).
EMBEDDING_WARN_RATIO = 3.0


def size_warning(model, n_params: int, n_nonembedding: int) -> Optional[str]:
    """A one-line warning when the vocabulary makes a named preset much larger than its
    name, e.g. ``nano`` (~0.1M) with GPT-2's 50,257 tokens has 3.3M parameters; else None.
    ``model`` is the run's :class:`scaling.config.ModelArgs`."""

    if model.preset == "custom" or not n_nonembedding or n_params < EMBEDDING_WARN_RATIO * n_nonembedding:
        return None
    return (f"model={model.preset} has {si(n_params)} parameters with a {model.vocab_size:,}-token vocabulary, "
            f"{n_params / n_nonembedding:.0f}x the {si(n_nonembedding)} non-embedding parameters its name stands "
            f"for: the embeddings dominate (fix: a larger preset, or a smaller vocabulary, data.vocab_size)")


def epochs_warning(tokens: float, train_tokens: Optional[int], cfg, exact: bool = True) -> Optional[str]:
    """A one-line warning when a budget of ``tokens`` passes over the ``train_tokens`` of the
    training split more than once, naming the epochs; None when it fits, when the corpus
    size is unknown, or for a data-constrained run (``data.unique_*``), which repeats on
    purpose. ``exact=False``: ``train_tokens`` is an upper bound (BPE before tokenizing),
    so the epochs are a lower bound. Repeated tokens are worth less than fresh ones
    (Muennighoff et al. 2023), so a law fitted to such runs is not the single-epoch law."""

    constrained = any(getattr(cfg, k, None) is not None
                      for k in ("unique_tokens", "unique_fraction", "unique_tokens_per_param"))
    if constrained or not train_tokens or tokens <= train_tokens:
        return None
    epochs = tokens / train_tokens
    return (f"{si(tokens)} tokens are {'' if exact else 'at least '}{epochs:.3g} epochs of data.source="
            f"{cfg.source}'s {'' if exact else '<= '}{si(train_tokens)} training tokens: repeated tokens are worth "
            f"less than fresh ones (Muennighoff et al. 2023) (fix: a larger corpus, fewer tokens, or "
            f"data.unique_tokens to study repetition on purpose)")


def data_warnings(model, tokens: float, train_tokens: Optional[int], cfg, exact: bool = True) -> List[str]:
    """:func:`size_warning` and :func:`epochs_warning` for one run: its ModelArgs, planned
    tokens, the training split's size and its DataConfig."""

    found = (size_warning(model, F.count_params(model), F.nonembedding_params(model)),
             epochs_warning(tokens, train_tokens, cfg, exact))
    return [w for w in found if w]


def train_tokens_estimate(cfg) -> tuple[Optional[int], bool]:
    """The training split's size in tokens for a DataConfig without tokenizing anything,
    and whether it is exact: pre-tokenized shards and an existing token cache give the
    count; the byte tokenizer gives it from file sizes; for BPE before its cache exists,
    the byte count is an upper bound (each token is at least one byte). (None, False)
    when the source cannot be read."""
    try:
        if cfg.source != "stdlib":
            shards = shard_paths(cfg.source)
            if shards:
                return load_shards(cfg, shards).train.n_tokens, True
        docs = select_documents(list_documents(cfg), cfg.max_files, cfg.max_bytes)
        opened = _open_cache(cache_root(cfg.cache_dir) / "tokens" / _cache_key(cfg, docs))
        if opened is not None:
            return int(opened[0]["splits"]["train"]["tokens"]), True
        train = [d for d in docs if not is_validation(d.id, cfg.val_frac)]
        # documents are joined by one separator (byte) or token (BPE) each
        return sum(d.size for d in train) + len(train), cfg.tokenizer.value == "byte"
    except (ConfigError, DataError, OSError):
        return None, False

"""Pre-tokenized ``.bin`` shards: finding them, reading the three layouts (llm.c's header
of 256 int32 then uint16 or uint32 tokens; nanoGPT's bare uint16; this toolkit's bare
tokens with a ``.json`` header beside them) and writing them. Files whose name contains
``val`` are the validation split.
"""
from __future__ import annotations

import glob as _glob
import hashlib
import json
import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from analysis.common.errors import ConfigError, DataError, InputError
from analysis.common.records import atomic_write_json

from .tokens import Corpus, TokenStream, token_dtype
from analysis.common.records import atomic_write_bytes

__all__ = ["shard_paths", "open_shard", "load_shards", "write_shard", "LLMC_MAGIC", "LLMC_HEADER_INTS"]

LLMC_MAGIC = {20240520: np.uint16, 20240801: np.uint32}  # llm.c GPT-2 and LLaMA-3 layouts
LLMC_HEADER_INTS = 256


def shard_paths(source: str) -> Optional[List[Path]]:
    """The ``.bin`` files a source names (a file, a directory holding some, or a glob), else None."""
    src = os.path.expanduser(source)
    if any(c in src for c in "*?["):
        paths = [Path(p) for p in sorted(_glob.glob(src))]
        return [p for p in paths if p.suffix == ".bin"] or None
    p = Path(src)
    if p.is_file() and p.suffix == ".bin":
        return [p]
    if p.is_dir():
        return sorted(p.glob("*.bin")) or None
    return None


def recorded_vocab(paths: List[Path]) -> Optional[int]:
    """The vocabulary the shards' ``.json`` headers record (the largest), or None: known
    before any token is read, so a run's name and its budget can use it."""
    side = [json.loads(p.with_suffix(".json").read_text()).get("vocab_size")
            for p in paths if p.with_suffix(".json").exists()]
    return max((v for v in side if v), default=None)


def shards_vocab(cfg, paths: List[Path]) -> int:
    """The vocabulary of shards: ``data.vocab_size``, else what their headers record; a
    ConfigError when neither says."""
    vocab = cfg.vocab_size if cfg.vocab_size is not None else recorded_vocab(paths)
    if vocab is None:
        raise ConfigError("pre-tokenized shards do not record their vocabulary", field="data.vocab_size",
                          fix="set data.vocab_size to the tokenizer's size, e.g. 50257 for GPT-2 tokens")
    return vocab


def open_shard(path: Path):
    """(tokens as a read-only memmap, dtype, layout name) of one pre-tokenized file."""
    side = path.with_suffix(".json")
    if side.exists():  # this toolkit's layout: bare tokens, header beside them
        try:
            meta = json.loads(side.read_text())
            dtype = np.dtype(meta["dtype"])
        except (ValueError, KeyError, TypeError):
            raise DataError("unreadable header", field=str(side), fix="delete it or regenerate the shard") from None
        size = path.stat().st_size
        if size % dtype.itemsize or ("tokens" in meta and size != int(meta["tokens"]) * dtype.itemsize):
            raise DataError(f"holds {size} bytes, but its header says {meta.get('tokens')} tokens of {dtype.name}",
                            field=str(path), fix="the shard or its .json header is damaged; regenerate both")
        return np.memmap(path, dtype=dtype, mode="r"), dtype, "toolkit"
    size = path.stat().st_size
    if size >= LLMC_HEADER_INTS * 4:
        header = np.fromfile(path, dtype=np.int32, count=LLMC_HEADER_INTS)
        magic = int(header[0])
        if magic in LLMC_MAGIC:
            dtype = np.dtype(LLMC_MAGIC[magic])
            n = int(header[2])
            body = size - LLMC_HEADER_INTS * 4
            if n * dtype.itemsize > body:
                raise DataError(f"header promises {n} tokens but the file is shorter", field=str(path),
                                fix="the shard is truncated; regenerate it")
            if n * dtype.itemsize < body:
                raise DataError(f"header promises {n} tokens but the file holds {body // dtype.itemsize}",
                                field=str(path), fix="the shard is damaged (or two were concatenated); regenerate it")
            return (np.memmap(path, dtype=dtype, mode="r", offset=LLMC_HEADER_INTS * 4, shape=(n,)),
                    dtype, "llm.c")
        if _looks_like_llmc_header(header, size):
            raise DataError(f"llm.c-style header with unknown magic number {magic}", field=str(path),
                            fix="llm.c shards start with 20240520 (uint16 tokens) or 20240801 (uint32); "
                                "regenerate the shard, or strip the header to read it as bare uint16 tokens")
    if size % 2:
        raise DataError("not a known token file (odd size, no llm.c header)", field=str(path),
                        fix="write shards as described under 'Bring your own data' in docs/trainer.md")
    return np.memmap(path, dtype=np.uint16, mode="r"), np.dtype(np.uint16), "nanoGPT"


def _looks_like_llmc_header(header: np.ndarray, size: int) -> bool:
    """A 1 KiB header laid out as llm.c's (a token count that matches the file size, zeros
    after it) whatever its magic number: read as bare tokens it would be silently wrong."""
    n = int(header[2])
    if n <= 0 or np.any(header[3:]):
        return False
    return any(LLMC_HEADER_INTS * 4 + n * k == size for k in (2, 4))


def load_shards(cfg, paths: List[Path]) -> Corpus:
    """Pre-tokenized shards: names containing ``val`` are validation, the rest train."""
    val_p = [p for p in paths if "val" in p.name.lower()]
    train_p = [p for p in paths if p not in val_p]
    if not train_p:
        raise DataError("no training shards (every file name contains 'val')", field="data.source",
                        fix="add training shards, e.g. data_train_000001.bin")
    if not val_p:
        raise DataError("no validation shard: none of the files has 'val' in its name", field="data.source",
                        fix="include a shard named like val.bin or fineweb_val_000000.bin")
    opened = {p: open_shard(p) for p in paths}
    widest = max(np.dtype(dt).itemsize for _, dt, _ in opened.values())
    limit = 1 << (8 * widest)
    vocab = shards_vocab(cfg, paths)
    if vocab > limit:
        raise ConfigError(f"vocab_size={vocab} exceeds what the shards' {8 * widest}-bit tokens can hold "
                          f"({limit})", field="data.vocab_size",
                          fix=f"use the tokenizer's real vocabulary (<= {limit}) or regenerate the shards as uint32")
    train = TokenStream([opened[p][0] for p in train_p], "train")
    val = TokenStream([opened[p][0] for p in val_p], "validation")
    top = max(train.max_token(), val.max_token()) if train.n_tokens and val.n_tokens else 0
    if top >= vocab:
        raise ConfigError(f"the shards hold token id {top}, outside vocab_size={vocab}", field="data.vocab_size",
                          fix=f"set data.vocab_size to at least {top + 1}")
    meta = {"tokenizer": "pre-tokenized", "vocab_size": vocab, "layouts": sorted({v[2] for v in opened.values()}),
            "splits": {"train": {"files": len(train_p), "tokens": train.n_tokens},
                       "val": {"files": len(val_p), "tokens": val.n_tokens}}, "source": cfg.source}
    return Corpus(train, val, vocab, meta)


def write_shard(path: str | os.PathLike, tokens, vocab_size: int, layout: str = "llm.c") -> Path:
    """Write tokens as a shard the trainer reads: ``llm.c`` (header + tokens) or ``toolkit``
    (bare tokens + ``.json`` header). Written atomically."""

    path = Path(path)
    arr = np.asarray(tokens)
    dtype = token_dtype(vocab_size)
    if arr.size and int(arr.max()) >= vocab_size:
        raise DataError(f"token id {int(arr.max())} >= vocab_size {vocab_size}", field="tokens")
    body = arr.astype(dtype).tobytes()
    if layout == "llm.c":
        header = np.zeros(LLMC_HEADER_INTS, dtype=np.int32)
        header[0] = 20240520 if dtype == np.uint16 else 20240801
        header[1] = 1 if dtype == np.uint16 else 7
        header[2] = arr.size
        atomic_write_bytes(path, header.tobytes() + body)
    elif layout == "toolkit":
        atomic_write_bytes(path, body)
        atomic_write_json(path.with_suffix(".json"), {"dtype": np.dtype(dtype).name, "vocab_size": vocab_size,
                                                      "tokens": int(arr.size),
                                                      "sha256": hashlib.sha256(body).hexdigest()})
    else:
        raise InputError(f"unknown layout {layout!r}", field="layout", fix="use llm.c or toolkit")
    return path

"""Checkpoints: atomic, checksummed, and found again after a crash.

A checkpoint is two files in ``<run>/checkpoints/``:

``step_00000123.pt``
    The ``torch.save`` payload: model and optimizer state, step, tokens, RNG states,
    completed branches, wall time.
``step_00000123.json``
    Its manifest: step, tokens, payload size and sha256.

Both are written through a temporary file and a rename; the manifest is written last,
so a checkpoint without a manifest, or whose payload does not match its sha256, is
incomplete or damaged and is skipped (with a warning) when looking for the newest
valid one. Older checkpoints are pruned only after the new manifest is in place, so a
kill at any moment leaves at least the previous valid checkpoint on disk.

The payload is streamed to its temporary file and hashed on the way, never held twice
in memory. Temporary files a kill left behind are removed by :func:`remove_partial`.

Test hook: ``SCALING_FAULT="POINT@STEP[,POINT@STEP...]"`` makes the process SIGKILL
itself at a named point (:data:`FAULT_POINTS`) of the given step, so tests can kill a
run at an exact moment, e.g. half-way through writing a checkpoint, instead of sleeping
and hoping. Unset (always, outside tests) it costs one environment lookup per call.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import warnings
from pathlib import Path
from typing import Optional, Protocol

import torch

from analysis.common.errors import CheckpointError
from analysis.common.records import atomic_write_json, atomic_writer

CKPT_DIR = "checkpoints"
FORMAT = 1
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


class Stateful(Protocol):
    """A part of a run whose state a checkpoint keeps (torchtitan's ``Stateful``): its
    ``state_dict()`` goes into the payload (top-level keys), ``load_state_dict()`` takes
    the payload back on resume."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CKPT_DIR


def save_checkpoint(run_dir: str | Path, state: dict, keep: int = 2) -> Path:
    """Write ``state`` (must hold ``step``) atomically, then prune all but the newest ``keep``."""
    step = int(state["step"])
    d = checkpoint_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"step_{step:08d}.pt"
    size, digest = _write_payload(path, {"format": FORMAT, **state}, step)
    fault_point("manifest", step)
    atomic_write_json(path.with_suffix(".json"), {
        "format": FORMAT, "step": step, "tokens": int(state.get("tokens", 0)), "bytes": size,
        "sha256": digest, "time": time.time()})
    _fsync_dir(d)  # the renames themselves survive a power cut, not only a killed process
    fault_point("prune", step)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        for p in (old, old.with_suffix(".json")):
            p.unlink(missing_ok=True)
    return path


class _HashingWriter:
    """A file wrapper that hashes and counts what torch.save writes through it."""

    def __init__(self, f, step: int):
        self.f, self.step = f, step
        self.sha, self.size = hashlib.sha256(), 0
        self.error: Optional[OSError] = None

    def write(self, b) -> int:
        if self.size:  # something is on disk already: the file is half-written now
            fault_point("payload", self.step)
        try:
            n = self.f.write(b)
        except OSError as e:
            self.error = e
            raise
        self.sha.update(b)
        self.size += len(b)
        return n

    def flush(self) -> None:
        self.f.flush()


def _write_payload(path: Path, obj: dict, step: int) -> tuple[int, str]:
    """torch.save ``obj`` to ``path`` atomically (:func:`analysis.common.records.atomic_writer`:
    a temporary file beside it, fsync, rename); (bytes, sha256)."""
    with atomic_writer(path) as f:
        w = _HashingWriter(f, step)
        try:
            torch.save(obj, w)
        except Exception:
            if w.error is not None:  # torch's zip writer hides the disk's error behind its own
                raise w.error from None
            raise
    return w.size, w.sha.hexdigest()


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def remove_partial(run_dir: str | Path) -> list[Path]:
    """Delete temporary files that a kill during a checkpoint write left behind; returns them.

    Only the process that owns the run may call this (a live writer's temporary file
    would go too): the trainer does, on start, before it writes anything.
    """
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    gone = [p for p in d.iterdir() if p.name.startswith(".step_") and p.name.endswith(".tmp")]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


#: Where :func:`fault_point` can kill the process: after a metrics row is logged (``step``),
#: half-way through the payload (``payload``), between payload and manifest
#: (``manifest``), and after the manifest but before pruning (``prune``).
FAULT_POINTS = ("step", "payload", "manifest", "prune")
FAULT_ENV = "SCALING_FAULT"


def fault_point(point: str, step: int) -> None:
    """Test hook: signal this process when ``$SCALING_FAULT`` names ``point@step``.

    The signal is SIGKILL, or SIGTERM for ``point@step:TERM`` (pre-emption arriving at
    that moment). Each item fires once per process.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for item in spec.split(","):
        where, _, sig = item.strip().partition(":")
        name, _, at = where.partition("@")
        if name == point and at.strip() == str(step) and item not in _fired:
            _fired.add(item)
            os.kill(os.getpid(), signal.SIGTERM if sig.strip().upper() == "TERM" else signal.SIGKILL)


_fired: set = set()


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoint payloads of a run, oldest first (valid or not)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint after checking it against its manifest; CheckpointError if damaged."""
    path = Path(path)
    man_path = path.with_suffix(".json")
    if not path.exists():
        raise CheckpointError("no such checkpoint", field=str(path), fix="use resume=auto or an existing file")
    if not man_path.exists():
        raise CheckpointError("no manifest beside the checkpoint (the write did not finish)", field=str(path),
                              fix="resume from an older checkpoint (resume=auto does this)")
    try:
        manifest = json.loads(man_path.read_text())
    except json.JSONDecodeError:
        raise CheckpointError("unreadable manifest", field=str(man_path), fix="delete the checkpoint") from None
    size = path.stat().st_size
    if size != manifest.get("bytes"):
        raise CheckpointError(f"payload has {size} bytes, its manifest says {manifest.get('bytes')} "
                              "(truncated or damaged)", field=str(path),
                              fix="delete it; resume=auto falls back to the previous checkpoint")
    if _sha256_file(path) != manifest.get("sha256"):
        raise CheckpointError("payload does not match its sha256 (damaged)", field=str(path),
                              fix="delete it; resume=auto falls back to the previous checkpoint")
    # weights_only: the payload holds only tensors and plain containers, and refusing
    # arbitrary pickles keeps a shared checkpoint from running code.
    state = torch.load(path, map_location=map_location, weights_only=True)
    if state.get("format") != FORMAT:
        raise CheckpointError(f"format {state.get('format')} is not {FORMAT}", field=str(path),
                              fix="resume with the toolkit version that wrote it")
    return state


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def latest_valid(run_dir: str | Path, map_location="cpu") -> Optional[tuple[Path, dict]]:
    """The newest checkpoint that loads and verifies, skipping damaged ones with a warning."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except CheckpointError as e:
            warnings.warn(f"skipping checkpoint: {e}")
        except Exception as e:  # unpickling errors of a payload that passed its checksum
            warnings.warn(f"skipping checkpoint {path}: {type(e).__name__}: {e}")
    return None


# --------------------------------------------------------------------------- RNG state

def rng_state() -> dict:
    """Every RNG a training step could draw from, in a form torch.load(weights_only) accepts."""
    import random

    import numpy as np

    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype("int64")), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype("uint32"), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    """random.setstate wants tuples; a round trip through torch.save may give lists."""
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x

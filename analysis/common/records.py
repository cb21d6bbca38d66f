"""The run-record format: where the trainer and the analysis meet.

One directory per run holds:

``config.yaml``
    The fully resolved training configuration.
``metrics.jsonl``
    One JSON object per logged optimizer step, appended and flushed as training goes,
    so a killed run keeps every row it logged. Fields are listed in :data:`METRIC_FIELDS`.
``branches.jsonl``
    One JSON object per finished WSD cooldown branch (:data:`BRANCH_FIELDS`): each is an
    extra (N, D, loss) point taken from the same run (Hägele et al. 2024).
``summary.json``
    The run's identity and outcome (:data:`SUMMARY_FIELDS`), rewritten atomically
    whenever the status changes.

This module is torch-free on purpose: the trainer writes through it and ``analysis``
reads through it, and a laptop without torch can still load a sweep.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from .errors import InputError, RecordError

SCHEMA_VERSION = 1

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
BRANCHES_FILE = "branches.jsonl"
SUMMARY_FILE = "summary.json"

#: Run states recorded in ``summary.json["status"]``.
STATUSES = ("running", "completed", "failed", "diverged", "resumable")

#: metrics.jsonl fields: name -> (required, description).
METRIC_FIELDS: dict[str, tuple[bool, str]] = {
    "step": (True, "optimizer steps completed (1-based, strictly increasing; a resumed run logs exactly the rows an uninterrupted run would)"),
    "tokens": (True, "training tokens consumed so far (all ranks together)"),
    "flops_6n": (True, "training FLOPs so far counted as 6 * N_nonembedding * tokens (Kaplan et al. 2020)"),
    "flops": (True, "training FLOPs so far by the detailed count of Hoffmann et al. 2022, App. F"),
    "lr": (True, "learning rate used for this step"),
    "train_loss": (True, "mean training cross-entropy (nats/token) over this step's global batch"),
    "val_loss": (False, "validation cross-entropy (nats/token) on the fixed held-out set, when measured at this step"),
    "val_bpb": (False, "val_loss in bits per byte of the held-out text: val_loss / ln 2 / val_bytes_per_token "
                       "(summary.json); absent where the text's bytes are unknown (pre-tokenized shards)"),
    "tokens_per_s": (False, "training throughput over the last logging interval"),
    "mfu": (False, "model FLOPs utilisation, when the device's peak FLOP/s is known"),
    "grad_norm": (False, "global gradient norm before clipping"),
    "epochs": (False, "data-constrained runs (data.unique_tokens): passes over the unique tokens so far, tokens / unique_tokens"),
    "wall_time": (True, "seconds since the run first started, summed over resumptions"),
}

#: branches.jsonl fields: name -> (required, description).
BRANCH_FIELDS: dict[str, tuple[bool, str]] = {
    "tokens": (True, "token budget of the branch: tokens seen when its cooldown ends"),
    "step": (True, "step at which the branch's cooldown ends"),
    "fork_step": (True, "step of the stable phase the branch was forked from"),
    "flops_6n": (True, "6ND FLOPs at the end of the branch"),
    "flops": (True, "detailed (App. F) FLOPs at the end of the branch"),
    "val_loss": (True, "validation loss at the end of the branch's cooldown"),
    "val_bpb": (False, "that loss in bits per byte (see METRIC_FIELDS); absent where unknown"),
    "train_loss": (False, "training loss on the branch's last step"),
}

#: summary.json fields: name -> (required, description).
SUMMARY_FIELDS: dict[str, tuple[bool, str]] = {
    "schema_version": (True, "version of this format"),
    "run_name": (True, "human-readable name, e.g. 'model=micro,tokens=20M'"),
    "status": (True, "one of " + ", ".join(STATUSES)),
    "params": (True, "total parameters of the built module"),
    "params_nonembedding": (True, "parameters excluding token embeddings (and an untied LM head)"),
    "tokens": (True, "token budget the run trains for"),
    "tokens_trained": (True, "tokens actually trained so far"),
    "flops": (True, "detailed training FLOPs for the tokens trained"),
    "flops_6n": (True, "6ND training FLOPs for the tokens trained"),
    "flops_per_token": (False, "detailed training FLOPs per token"),
    "final_val_loss": (False, "validation loss at the end of training (null until finished)"),
    "final_val_bpb": (False, "final_val_loss in bits per byte: final_val_loss / ln 2 / val_bytes_per_token (null "
                             "until finished, or where the bytes are unknown)"),
    "val_bytes_per_token": (False, "bytes of held-out text per predicted token of the validation set (1 for the "
                                   "byte tokenizer); null where unknown (pre-tokenized shards record no text); "
                                   "absent in records written before it was kept"),
    "final_train_loss": (False, "training loss at the last step"),
    "branches": (False, "list of branch rows (see BRANCH_FIELDS)"),
    "model": (False, "architecture: preset, d_model, n_layers, n_heads, vocab_size, seq_len"),
    "config_hash": (True, "hash of the resolved configuration; identical configs share it"),
    "versions": (False, "python, torch, toolkit versions"),
    "error": (False, "one-line error message when status is failed or diverged"),
    "wall_time": (False, "seconds of training, summed over resumptions"),
    "steps": (False, "optimizer steps the token budget takes"),
    "steps_trained": (False, "optimizer steps completed so far"),
    "batch_tokens": (False, "tokens per optimizer step, all ranks and accumulation micro-steps together"),
    "data": (False, "corpus: source, tokenizer, vocab_size, cache path, train_tokens, val_tokens"),
    "device": (False, "device the run trained on, e.g. 'cpu (x86_64, 2 threads)' or the GPU's name"),
    "world_size": (False, "number of data-parallel ranks"),
    "kernels": (False, "implementation of the hot ops actually used: eager, compile or triton"),
    "compile": (False, "whether the model was wrapped in torch.compile"),
    "precision": (False, "training precision, e.g. fp32 or bf16 autocast"),
    "skipped_steps": (False, "updates skipped for a non-finite loss or gradient (on_nonfinite=skip)"),
    "lost_metric_rows": (False, "metrics.jsonl rows a resume found missing (the file cut short or edited): a gap "
                                "in the curve"),
    "tokens_per_s": (False, "mean training throughput over the timed steps"),
    "unique_tokens": (False, "data-constrained runs: the unique training tokens U the run repeats (null: the whole training split)"),
    "epochs": (False, "passes over the training data: tokens_trained / unique_tokens (or / the training split's tokens)"),
}


def bits_per_byte(loss, bytes_per_token) -> float | None:
    """A loss in nats per token as bits per byte of text, the unit that compares runs with
    different tokenizers (Gao et al. 2020, The Pile): loss / ln 2 / bytes per token. None
    where either is unknown (a record without ``val_bytes_per_token``, or pre-tokenized
    shards, whose text is unknown)."""
    if loss is None or not bytes_per_token:
        return None
    loss = float(loss)
    return loss / (math.log(2) * float(bytes_per_token)) if math.isfinite(loss) else None


# --------------------------------------------------------------------------- writing

@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only if the ``with`` block ends without an error,
    so readers see the old file or the new one, never half of one (the run record and the
    checkpoints both write this way).

    The bytes go to a temporary file beside ``path`` (``.NAME.XXXX.tmp``), are flushed and
    fsynced, and the file is renamed over ``path`` (atomic within one file system). On an
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def _jsonable(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null so that readers never meet a bare NaN token."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _jsonable(obj.item())
    return obj


# --------------------------------------------------------------------------- output paths

def check_output(path: str | os.PathLike, field: str, directory: bool = False) -> Path:
    """Refuse now, before any work, an output location that cannot be written.

    ``path`` is a file to be written (``directory=False``) or a directory to be created or
    filled. Nothing is created: the nearest existing ancestor must be a directory this
    process may write into, so a refusal leaves no empty directories behind. ``field``
    names the option in the error (``-o``, ``--out``). Returns ``path`` as a Path.
    """
    path = Path(path).expanduser()
    if directory:
        if path.exists() and not path.is_dir():
            raise InputError(f"cannot write into {path}: it is a file, not a directory", field=field,
                             fix=f"choose a directory path, or move the file {path} away")
    elif path.is_dir():
        raise InputError(f"cannot write {path}: it is a directory", field=field,
                         fix="give a file name, e.g. " + str(path / "out"))
    p = path if directory else path.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise InputError(f"cannot write {path}: {p} is a file, not a directory", field=field,
                         fix=f"choose a location whose parents are directories, or move the file {p} away")
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: {p} is not writable", field=field,
                         fix="choose a location you can write to")
    if directory:
        # os.access trusts permission bits: root passes it everywhere, and a file system such
        # as /proc refuses what the bits allow. A directory is filled later, by other
        # processes (a sweep's jobs): try a file there now, and remove it again.
        try:
            fd, probe = tempfile.mkstemp(dir=p, prefix=".write-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise InputError(f"cannot write {path}: {p} refuses new files ({e.strerror or e})", field=field,
                             fix="choose a location you can write to") from None
    return path


def output_error(e: OSError, field: str, path: str | os.PathLike | None = None) -> InputError:
    """An OSError met while writing an output, as the one-line error of the option that named it."""
    where = e.filename2 or e.filename or path
    if where is not None:
        # The atomic writes fail on their temporary file: name the file the user asked for.
        name = Path(where).name
        if name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3:
            where = Path(where).with_name(name[1:].rsplit(".", 2)[0])
    space = (errno.ENOSPC, getattr(errno, "EDQUOT", -1))
    reason = {errno.ENOSPC: "no space left on the device", getattr(errno, "EDQUOT", -1): "disk quota exceeded",
              errno.EROFS: "the file system is read-only"}.get(e.errno, e.strerror or str(e))
    if e.errno in space:
        fix = "free disk space, or choose a location on another file system"
    elif e.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
        fix = "choose a path whose directories are directories and whose file is not one"
    else:
        fix = "choose a location you can write to"
    return InputError(f"cannot write {where}: {reason}", field=field, fix=fix)


@contextlib.contextmanager
def writing_output(field: str, path: str | os.PathLike | None = None):
    """Turn an OSError raised inside the block into :func:`output_error`.

    The atomic writes above remove their temporary file when they fail; the directories
    the block created on the way to ``path`` (still empty then) are removed too, so a
    refused write leaves nothing behind.
    """
    created = []
    if path is not None:
        p = Path(path)
        while not p.exists() and p != p.parent:
            created.append(p)
            p = p.parent
    try:
        yield
    except OSError as e:
        for q in created:  # deepest first; rmdir refuses anything not an empty directory
            with contextlib.suppress(OSError):
                q.rmdir()
        raise output_error(e, field, path) from None


class JsonlAppender:
    """Append JSON rows to a file, flushing (and fsyncing) each so that a kill loses none."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._f = open(self.path, "a", encoding="utf-8")

    def append(self, row: dict) -> None:
        self._f.write(json.dumps(_jsonable(row), sort_keys=True) + "\n")
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def sync(self) -> None:
        """Force rows written so far to disk (for appenders opened with ``fsync=False``)."""
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def truncate_jsonl(path: str | os.PathLike, keep: "callable") -> int:
    """Atomically rewrite ``path`` keeping only rows for which ``keep(row)`` is true.

    Used on resume: rows logged after the checkpoint being resumed from are dropped, so
    that the resumed run re-logs them once and the file has no duplicated steps.
    A torn last line (a kill in the middle of a write) is dropped too. Returns rows kept.
    """
    path = Path(path)
    if not path.exists():
        return 0
    rows = list(iter_jsonl(path, warn_torn=False))
    kept = [r for r in rows if keep(r)]
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return len(kept)


# --------------------------------------------------------------------------- reading

def iter_jsonl(path: str | os.PathLike, warn_torn: bool = True) -> Iterator[dict]:
    """Rows of a JSON-lines file. A torn final line is skipped (with a warning); a bad
    line anywhere else is an error, because it means the file was corrupted, not cut."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as e:
        raise RecordError(f"is not text (byte {e.start} is not UTF-8): not a JSON-lines record", field=str(path),
                          fix="the file is corrupt; rerun the run, or point at the run directory it belongs in"
                          ) from None
    # A file that ends in "\n" yields a final empty string; anything else there is torn.
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == last:
                if warn_torn:
                    warnings.warn(f"{path}: skipping a torn last line (the run was killed mid-write)")
                continue
            raise RecordError(f"line {i + 1} is not valid JSON", field=str(path),
                              fix="the file is corrupt; rerun the run or delete the line") from None
        if not isinstance(row, dict):
            raise RecordError(f"line {i + 1} is not a JSON object", field=str(path))
        yield row


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``, checked for the required fields."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise RecordError("no metrics file", field=str(path), fix="point at a run directory written by `scaling train`")
    rows = list(iter_jsonl(path))
    required = [k for k, (req, _) in METRIC_FIELDS.items() if req]
    for i, row in enumerate(rows):
        missing = [k for k in required if k not in row]
        if missing:
            raise RecordError(f"row {i + 1} lacks {', '.join(missing)}", field=str(path))
    return rows


def read_branches(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / BRANCHES_FILE
    return list(iter_jsonl(path)) if path.exists() else []


def read_summary(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        raise RecordError("no summary file", field=str(path), fix="point at a run directory written by `scaling train`")
    damaged = ("the file is damaged (e.g. a copy cut short); delete it and rerun the run's command, which "
               "resumes from the run's newest checkpoint")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"not valid JSON ({e.msg})", field=str(path), fix=damaged) from None
    except UnicodeDecodeError as e:
        raise RecordError(f"is not text (byte {e.start} is not UTF-8), so not a run summary", field=str(path),
                          fix=damaged) from None
    if not isinstance(summary, dict):
        raise RecordError(f"holds a JSON {type(summary).__name__}, not a run summary (an object)", field=str(path),
                          fix=damaged)
    missing = [k for k, (req, _) in SUMMARY_FIELDS.items() if req and k not in summary]
    if missing:
        raise RecordError(f"lacks {', '.join(missing)}", field=str(path))
    if summary["status"] not in STATUSES:
        raise RecordError(f"unknown status {summary['status']!r}", field=str(path))
    return summary


def find_run_dirs(path: str | os.PathLike) -> list[Path]:
    """Every run directory (one holding ``summary.json``) at or below ``path``, sorted."""
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file or directory", field=str(path))
    if (path / SUMMARY_FILE).exists():
        return [path]
    return sorted(p.parent for p in path.rglob(SUMMARY_FILE))


#: Columns of :func:`points_table`, one row per observed (N, D, loss) point.
POINT_COLUMNS = ("run", "point", "status", "params", "params_nonembedding", "tokens",
                 "flops", "flops_6n", "loss", "run_dir")


def iter_points(run_dirs: Iterable[Path], include_unfinished: bool = False,
                skipped: list | None = None) -> Iterator[dict]:
    """Observed points: each run's final validation loss, plus one row per WSD branch.

    Runs whose status is not ``completed`` contribute no final point unless
    ``include_unfinished``; their finished branches still count, because a branch's loss
    is final once written. Diverged runs contribute nothing, with a warning. A run whose
    record cannot be read (a truncated ``summary.json``) is an error, unless ``skipped``
    is a list: then the run is left out with a warning and its error appended there.
    """
    def unreadable(e: RecordError) -> None:
        if skipped is None:
            raise e
        warnings.warn(f"skipped a run whose record cannot be read: {e}")
        skipped.append(str(e))

    for run_dir in run_dirs:
        try:
            s = read_summary(run_dir)
        except RecordError as e:
            unreadable(e)
            continue
        base = {"run": s["run_name"], "status": s["status"], "params": s["params"],
                "params_nonembedding": s["params_nonembedding"], "run_dir": str(run_dir)}
        preset = s["model"].get("preset") if isinstance(s.get("model"), dict) else None
        if isinstance(preset, str) and preset:  # the model's name, for labels (analysis.common.text.model_label)
            base["model"] = preset
        if s.get("unique_tokens"):  # a data-constrained run: every point carries its U
            base["unique_tokens"] = s["unique_tokens"]
        if s["status"] == "diverged":
            warnings.warn(f"{run_dir}: run diverged ({s.get('error') or 'non-finite loss'}); excluded from analysis")
            continue
        try:
            branches = read_branches(run_dir)
        except RecordError as e:
            unreadable(e)
            continue
        for b in branches:
            yield _capped({**base, "point": f"branch@{b['tokens']}", "tokens": b["tokens"], "flops": b["flops"],
                           "flops_6n": b["flops_6n"], "loss": b["val_loss"]})
        if s["status"] == "completed" or include_unfinished:
            loss = s.get("final_val_loss")
            if loss is None:
                continue
            yield _capped({**base, "point": "final", "tokens": s["tokens_trained"], "flops": s["flops"],
                           "flops_6n": s["flops_6n"], "loss": loss})


def _capped(point: dict) -> dict:
    """A point of a data-constrained run counts the unique tokens it can have seen: U, or
    its tokens when it stopped within the first epoch (a branch rounded to whole steps)."""
    if "unique_tokens" in point and point["tokens"] is not None:
        point["unique_tokens"] = min(point["unique_tokens"], point["tokens"])
    return point


def points_table(path: str | os.PathLike, include_unfinished: bool = False, skip_unreadable: bool = False):
    """A pandas DataFrame of every observed point at or below ``path`` (see :data:`POINT_COLUMNS`).

    With ``skip_unreadable``, runs whose record cannot be read are left out with a warning
    and listed in ``df.attrs["skipped_runs"]``; otherwise the first one is an error.
    """
    import pandas as pd

    skipped: list | None = [] if skip_unreadable else None
    rows = list(iter_points(find_run_dirs(path), include_unfinished=include_unfinished, skipped=skipped))
    # unique_tokens only where some run is data-constrained, model only where records name
    # their preset, so other tables stay as they were
    extra = [c for c in ("unique_tokens", "model") if any(c in r for r in rows)]
    df = pd.DataFrame(rows, columns=list(POINT_COLUMNS) + extra)
    df.attrs["skipped_runs"] = skipped or []
    return df


#: The columns :func:`load_metrics` puts before a run's metric columns.
RUN_COLUMNS = ("run", "model", "params", "params_nonembedding", "status", "run_dir")


def load_metrics(path: str | os.PathLike, skip_unreadable: bool = False):
    """Every logged row of every run at or below ``path`` (a sweep directory or one run),
    as one pandas DataFrame: :data:`RUN_COLUMNS` (the run's name, its model preset, total
    and non-embedding parameters, status and directory), then the ``metrics.jsonl``
    columns (``step``, ``tokens``, ``train_loss``, ``val_loss`` where measured, ...), one
    row per logged step, sorted by run and step. A column a run did not log is NaN there.

    A run whose record cannot be read is an error, unless ``skip_unreadable``: then it is
    left out with a warning and listed in ``df.attrs["skipped_runs"]``.
    """
    import pandas as pd

    frames, skipped = [], []
    for run_dir in find_run_dirs(path):
        try:
            s = read_summary(run_dir)
            rows = read_metrics(run_dir)
        except RecordError as e:
            if not skip_unreadable:
                raise
            warnings.warn(f"skipped a run whose record cannot be read: {e}")
            skipped.append(str(e))
            continue
        if not rows:
            continue
        m = pd.DataFrame(rows)
        run = {"run": s["run_name"], "model": (s.get("model") or {}).get("preset"), "params": s["params"],
               "params_nonembedding": s["params_nonembedding"], "status": s["status"], "run_dir": str(run_dir)}
        frames.append(pd.concat([pd.DataFrame({k: [v] * len(m) for k, v in run.items()}), m], axis=1))
    if frames:
        df = pd.concat(frames, ignore_index=True).sort_values(["run", "step"], kind="mergesort", ignore_index=True)
    else:
        df = pd.DataFrame(columns=list(RUN_COLUMNS) + [k for k, (req, _) in METRIC_FIELDS.items() if req])
    df.attrs["skipped_runs"] = skipped
    return df

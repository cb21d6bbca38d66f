"""The sweep index: one table of every run and every WSD branch point in a sweep directory.

``runs.csv`` (and ``runs.parquet`` when pyarrow is installed) in the sweep directory, one
row per observed point: each run's final point, and one row per finished WSD cooldown
branch (Hägele et al. 2024) from ``branches.jsonl``. Columns (:data:`INDEX_COLUMNS`):

``run``                 the run directory's name (readable part + config hash)
``point``               ``final``, or ``branch@<tokens>`` for a cooldown branch
``status``              the run's status; ``interrupted`` is a ``running`` run that no live
                        process holds (killed); branch rows carry the run's status
``params``              total parameters
``params_nonembedding`` non-embedding parameters (Kaplan et al. 2020's N)
``tokens``              tokens at this point (final rows of unfinished runs: the budget)
``tokens_per_param``    tokens / params
``flops``, ``flops_6n`` training FLOPs at this point: detailed (Hoffmann et al. 2022,
                        App. F) and 6ND
``loss``                validation loss at this point (empty until the run has one)
``bpb``                 that loss in bits per byte of the held-out text (loss / ln 2 /
                        the summary's ``val_bytes_per_token``); only where some run's
                        record keeps its bytes per token, and empty where it is unknown
                        (pre-tokenized shards)
``model``, ``budget``   the run's preset and budget as written
``config_hash``         hash of the resolved training config
``wall_time``           seconds of training, over all attempts
``error``               the one-line error of a failed or diverged run
``run_dir``             the run directory, relative to the sweep directory

The files are written atomically (temporary file, then rename), after every multirun
(a Hydra callback) and by ``scaling runs SWEEP_DIR --reindex``. Reading never needs
them: :func:`build_index` scans the run records themselves. The table has the columns
``analysis.data.loading.load_points`` reads (``params``, ``tokens``, ``loss``, ``run``); keep
``status == "completed"`` rows (and branch rows) for fitting.

This module is torch-free.
"""
# Deferred imports: the import of .job inside index_rows gains nothing (sweeps.job is light: it
# defers torch itself) and may move to the top.
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any, Optional

from analysis.common import records as R
from analysis.common.errors import RecordError

log = logging.getLogger("sweeps")

INDEX_CSV = "runs.csv"
INDEX_PARQUET = "runs.parquet"

INDEX_COLUMNS = ("run", "point", "status", "params", "params_nonembedding", "tokens", "tokens_per_param",
                 "flops", "flops_6n", "loss", "model", "budget", "config_hash", "wall_time", "error", "run_dir")

#: Order in which statuses are counted and shown.
STATUS_ORDER = ("completed", "running", "interrupted", "resumable", "failed", "diverged")


def index_rows(sweep_dir: str | Path, unreadable: Optional[list] = None) -> list[dict]:
    """Rows of the index for every run at or below ``sweep_dir`` (see :data:`INDEX_COLUMNS`).
    A run whose summary cannot be read is skipped with a warning, or, given a list
    ``unreadable``, its RecordError is appended there instead."""
    from .job import is_locked

    sweep_dir = Path(sweep_dir)
    rows = []
    for run_dir in R.find_run_dirs(sweep_dir):
        try:
            s = R.read_summary(run_dir)
        except RecordError as e:
            if unreadable is not None:
                unreadable.append(e)
            else:
                warnings.warn(f"skipped a run whose record cannot be read: {e}")
            continue
        status = s["status"]
        if status == "running" and not is_locked(run_dir):
            status = "interrupted"
        model = s.get("model") or {}
        base = {
            "run": run_dir.name, "status": status, "params": s.get("params"),
            "params_nonembedding": s.get("params_nonembedding"),
            "model": model.get("preset") if isinstance(model, dict) else model,
            "budget": _budget_of(run_dir.name), "config_hash": s.get("config_hash"),
            "wall_time": s.get("wall_time"), "error": s.get("error"),
            "run_dir": _relative(run_dir, sweep_dir),
        }
        if s.get("unique_tokens"):  # data-constrained run (data.unique_tokens)
            base["unique_tokens"] = s["unique_tokens"]
        try:
            branches = R.read_branches(run_dir)
        except RecordError as e:
            warnings.warn(f"{run_dir}: branches unreadable ({e}); listing the run without them")
            branches = []
        first = len(rows)
        for b in sorted(branches, key=lambda b: b.get("tokens") or 0):
            rows.append(_point(base, f"branch@{b.get('tokens')}", b.get("tokens"), b.get("flops"),
                               b.get("flops_6n"), b.get("val_loss")))
        done = s["status"] == "completed"
        rows.append(_point(base, "final", s.get("tokens_trained") if done else s.get("tokens"),
                           s.get("flops") if done else None, s.get("flops_6n") if done else None,
                           s.get("final_val_loss")))
        if "val_bytes_per_token" in s:  # records written before bits per byte lack the key
            for r in rows[first:]:
                r["bpb"] = R.bits_per_byte(r["loss"], s["val_bytes_per_token"])
    return rows


def _point(base: dict, point: str, tokens, flops, flops_6n, loss) -> dict:
    params = base.get("params")
    tpp = tokens / params if tokens and params else None
    out = {**base, "point": point, "tokens": tokens, "tokens_per_param": tpp, "flops": flops,
           "flops_6n": flops_6n, "loss": loss}
    if base.get("unique_tokens") and tokens:
        out["epochs"] = tokens / base["unique_tokens"]
    return out


def _budget_of(name: str) -> Optional[str]:
    # The readable part of a sweep run's name is "model=...,<budget>-<hash>".
    head = name.rsplit("-", 1)[0]
    parts = head.split(",")
    return parts[-1] if len(parts) > 1 and "=" in parts[-1] else None


def _relative(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
        return str(rel) if str(rel) != "." else "."
    except ValueError:
        return str(path)


def build_index(sweep_dir: str | Path, *, some_readable: bool = False):
    """The index as a pandas DataFrame, built from the run records (nothing is written).
    Runs whose records cannot be read are left out with a warning; with ``some_readable``,
    when no run can be read, the first one's RecordError is raised instead of an empty index."""
    import pandas as pd

    unreadable: list = []
    rows = index_rows(sweep_dir, unreadable)
    if unreadable and not rows and some_readable:
        raise unreadable[0]
    for e in unreadable:
        warnings.warn(f"skipped a run whose record cannot be read: {e}")
    # the data-constrained columns only where some run has them, so ordinary indexes stay as they were
    # bits per byte only where some record keeps its bytes per token, so older indexes stay as they were
    extra = [c for c in ("bpb", "unique_tokens", "epochs") if any(c in r for r in rows)]
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS) + extra)
    # Smallest model first, then its runs and points by tokens: the order a ladder is read in.
    order = df.assign(_p=df["params"].astype(float).fillna(float("inf")),
                      _t=df["tokens"].astype(float).fillna(float("inf")))
    return df.loc[order.sort_values(["_p", "run", "_t"], kind="stable").index].reset_index(drop=True)


def write_index(sweep_dir: str | Path, parquet: bool = True) -> dict:
    """Build the index and write ``runs.csv`` (and ``runs.parquet``) atomically.

    Returns ``{"csv": path, "parquet": path or None, "runs": n, "points": n, "counts": {...}}``.
    """
    sweep_dir = Path(sweep_dir)
    df = build_index(sweep_dir)
    csv_path = sweep_dir / INDEX_CSV
    R.atomic_write_text(csv_path, df.to_csv(index=False))
    pq_path = None
    if parquet and _have_pyarrow():
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        pq_path = sweep_dir / INDEX_PARQUET
        R.atomic_write_bytes(pq_path, buf.getvalue())
    counts = status_counts(df)
    return {"csv": str(csv_path), "parquet": str(pq_path) if pq_path else None,
            "runs": int(sum(counts.values())), "points": int(len(df)), "counts": counts}


def read_index(path: str | Path):
    """The index of a sweep: rebuilt from its run records, or read from ``runs.csv``/``.parquet``
    when ``path`` is such a file or a directory holding one but no runs."""
    import pandas as pd

    path = Path(path)
    if path.is_file():
        return _read_index_file(path)
    if not path.exists():
        raise RecordError("no such file or directory", field=str(path),
                          fix="point at a sweep directory, e.g. demo_out/runs")
    if R.find_run_dirs(path):
        return build_index(path, some_readable=True)
    for name in (INDEX_PARQUET, INDEX_CSV):
        if (path / name).exists() and (name != INDEX_PARQUET or _have_pyarrow()):
            return read_index(path / name)
    raise RecordError("no runs here (no summary.json below it and no runs.csv)", field=str(path),
                      fix="point at the sweep's directory (sweep.root), e.g. demo_out/runs")


#: Columns a file must have to be read as a sweep index (``scaling runs`` shows them).
INDEX_REQUIRED = ("run", "point", "status")


def _read_index_file(path: Path):
    """A ``runs.csv``/``runs.parquet`` file, or a RecordError naming it: not a table, or a
    table that is not a sweep index (e.g. a table of points for ``scaling fit``)."""
    import pandas as pd

    fix = "point at a sweep directory (sweep.root) or the runs.csv written there, e.g. demo_out/runs"
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except UnicodeDecodeError as e:
        raise RecordError(f"is not text (byte {e.start} is not UTF-8), so not a sweep index", field=str(path),
                          fix=fix) from None
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        why = " ".join(str(e).split())[:120] or type(e).__name__
        raise RecordError(f"cannot be read as a sweep index ({why})", field=str(path), fix=fix) from None
    missing = [c for c in INDEX_REQUIRED if c not in df.columns]
    if missing:
        points = {"params", "tokens", "loss"} <= set(df.columns) or {"N", "D", "loss"} <= set(df.columns)
        what = ("a table of points (params, tokens, loss), not a sweep index" if points
                else f"not a sweep index: it has no {', '.join(missing)} column")
        raise RecordError(what, field=str(path),
                          fix=(f"fit it with `scaling fit {path}`, or " if points else "") + fix)
    return df


def status_counts(df) -> dict:
    """Runs (not points) per status, in :data:`STATUS_ORDER` (others after, sorted)."""
    if len(df) == 0:
        return {}
    per_run = df.drop_duplicates("run")["status"].value_counts().to_dict()
    order = [s for s in STATUS_ORDER if s in per_run] + sorted(s for s in per_run if s not in STATUS_ORDER)
    return {s: int(per_run[s]) for s in order}


def format_counts(counts: dict) -> str:
    n = sum(counts.values())
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"{n} run{'s' if n != 1 else ''}" + (f": {parts}" if parts else "")


def _have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- Hydra callback

try:
    from hydra.experimental.callback import Callback as _Callback
except ImportError:  # pragma: no cover - hydra is a dependency; keep the module importable anyway
    _Callback = object


def _sweep_root(config: Any) -> Path:
    # The records live under sweep.root whatever hydra.sweep.dir says (it follows
    # sweep.root unless overridden, and then only moves Hydra's own job files).
    return Path(str(config.sweep.root)).expanduser().resolve()


#: Outcome of the last multirun in this process (read by ``python -m sweeps`` for its exit code).
LAST_SWEEP: dict = {}


class IndexCallback(_Callback):
    """Writes the sweep index when a multirun ends (``hydra.callbacks.index`` in config.yaml)."""

    def __init__(self, parquet: bool = True):
        self.parquet = parquet

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._write(_sweep_root(config), config)

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        # A single job (no -m) lives in the same sweep directory; keep its index current too.
        self._write(_sweep_root(config), config)

    def _write(self, sweep_dir: Path, config: Any) -> None:
        if not sweep_dir.exists():
            return
        parquet = self.parquet and bool(config.get("sweep", {}).get("index_parquet", True))
        info = write_index(sweep_dir, parquet=parquet)
        LAST_SWEEP.clear()
        LAST_SWEEP.update(info, sweep_dir=str(sweep_dir))
        n = info["points"]
        log.info("sweep index: %s (%s; %d point%s)", info["csv"], format_counts(info["counts"]), n,
                 "" if n == 1 else "s")


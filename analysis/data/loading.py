"""Observation tables: loading, column mapping and cleaning.

Every fit in :mod:`analysis` takes one table with one row per observed point and the
canonical columns

``params``  model size N (total parameters)
``tokens``  training tokens D the loss was measured at
``loss``    loss in nats per token

plus, when known, ``flops`` (training compute C; 6ND when the source has no count of
its own), ``run`` (which training run the point comes from: bootstrap resamples whole
runs), ``step``, ``params_nonembedding`` (Kaplan et al. 2020 count N without the
embeddings), ``point`` ("final" or "branch@TOKENS" for the trainer's records) and
``unique_tokens`` (the unique tokens U a run repeats, at most ``tokens``: Muennighoff et
al. 2023's data-constrained law uses it).

:func:`load_points` builds that table from a sweep or run directory, a CSV / Parquet /
JSON-lines file or a DataFrame. Common spellings of the columns are recognised (the
Chinchilla replication's ``Model Size``, ``Training Tokens``, ``Training FLOP``;
``N``, ``D``, ``final_loss``...); others are mapped explicitly with ``columns``.
Rows with a missing, non-finite or non-positive value, and rows repeated verbatim, are
refused (``policy="raise"``) or dropped with a note (``policy="omit"``).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..common.errors import InputError, RecordError, TableError
from ..common.records import points_table
from . import datasets

__all__ = ["CANONICAL", "REQUIRED", "ALIASES", "POLICIES", "load_points", "parse_columns",
           "describe_points", "table_notes"]

REQUIRED = ("params", "tokens", "loss")
#: Canonical columns, in the order :func:`load_points` returns them.
CANONICAL = ("params", "tokens", "loss", "flops", "run", "step", "params_nonembedding", "point", "unique_tokens")
POLICIES = ("raise", "omit")
#: Numeric canonical columns that must be finite and positive when present.
_POSITIVE = ("params", "tokens", "loss", "flops", "params_nonembedding", "unique_tokens")


def _key(name: str) -> str:
    """Spelling-insensitive key: 'Training Tokens', 'training_tokens' and 'trainingTokens' agree."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


#: Recognised spellings (compared case- and punctuation-insensitively) -> canonical name.
ALIASES: dict[str, str] = {
    _key(alias): canon
    for canon, spellings in {
        "params": ["params", "N", "model size", "model_size", "parameters", "num_params", "n_params",
                   "param_count", "nparams"],
        "tokens": ["tokens", "D", "training tokens", "train_tokens", "num_tokens", "n_tokens",
                   "tokens_trained"],
        "loss": ["loss", "final_loss", "final_val_loss", "val_loss", "eval_loss", "validation loss",
                 "test_loss", "L"],
        "flops": ["flops", "C", "training flop", "training flops", "compute", "flop", "train_flops"],
        # Not 'model' or 'name': those often name a size, and resampling sizes is not resampling runs.
        "run": ["run", "run_name", "run_id"],
        "step": ["step", "steps", "iteration", "iter"],
        "params_nonembedding": ["params_nonembedding", "non_embedding_params", "nonembedding_params",
                                "N_nonembedding", "params_non_embedding", "n_nonembed"],
        "point": ["point"],
        "unique_tokens": ["unique_tokens", "U", "unique tokens", "num_unique_tokens", "n_unique_tokens"],
    }.items()
    for alias in spellings
}


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Column mapping from ``"params=Model Size,tokens=Training Tokens"`` or a dict.

    Keys are canonical names and values source columns; a dict written the other way
    round (source -> canonical) is accepted too, since only one reading makes sense.
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        out = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise InputError(f"bad column mapping {part!r}", field="columns",
                                 fix="write CANONICAL=SOURCE pairs, e.g. params=Model Size,tokens=Training Tokens")
            k, v = (s.strip() for s in part.split("=", 1))
            out[k] = v
        spec = out
    mapping = {}
    for k, v in dict(spec).items():
        if k in CANONICAL:
            mapping[k] = v
        elif v in CANONICAL:
            mapping[v] = k
        else:
            raise InputError(f"neither {k!r} nor {v!r} is a canonical column", field="columns",
                             fix="map onto one of " + ", ".join(CANONICAL))
    return mapping


def _read_source(source, policy: str = "raise") -> tuple[pd.DataFrame, str]:
    """The raw table and a short description of where it came from. Under ``policy="omit"``
    a run directory whose record cannot be read is left out (and said so in the notes)."""
    if isinstance(source, pd.DataFrame):
        return source.copy(), "DataFrame"
    path = Path(source)
    if not path.exists():

        if datasets.is_dataset_name(source):
            return datasets.load(source), str(source)
    if not path.exists():
        raise InputError("no such file or directory", field=str(path),
                         fix="pass a sweep or run directory, or a CSV/Parquet table")
    if path.is_dir():

        try:
            df = points_table(path, skip_unreadable=policy == "omit")
        except RecordError as e:
            raise RecordError(e.message, field=e.field,
                              fix="repair or delete that run, or leave it out with policy='omit' "
                                  "(--on-bad-rows omit)") from None
        if df.empty:
            raise TableError("no finished run with a final validation loss below this directory",
                             field=str(path), fix="wait for runs to complete, or point at a sweep directory")
        # The records carry the trainer's detailed FLOP count; keep 6*N_nonembedding*D beside it.
        skipped = df.attrs.pop("skipped_runs", [])
        df = df.drop(columns=["status", "run_dir"], errors="ignore")
        if skipped:
            df.attrs["_read_notes"] = [f"left out {len(skipped)} run(s) whose record cannot be read: "
                                       + "; ".join(skipped)]
        return df, f"run records in {path}"
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True)
        elif suffix == ".json":
            _refuse_saved_fit(path)
            df = _read_json_table(path)
        elif suffix == ".tsv":
            df = pd.read_csv(path, sep="\t")
        else:
            df = pd.read_csv(path)
            if df.shape[1] == 1:  # one column: maybe another delimiter (a spreadsheet's tab or ';' export)
                head = str(df.columns[0])
                sep = next((c for c in ("\t", ";", "|") if c in head), None)
                if sep is not None:
                    df = pd.read_csv(path, sep=sep)
    except ImportError as e:
        raise InputError(f"cannot read {suffix} files here ({e})", field=str(path),
                         fix="install pyarrow, or convert the table to CSV") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TableError(f"not a readable table ({str(e).splitlines()[0]})", field=str(path),
                         fix="give a CSV with a header row, a Parquet file, or a run directory") from None
    return df, str(path)


def _read_json_table(path: Path) -> pd.DataFrame:
    """A JSON table (a list of row objects, or an object of columns), or a TableError
    saying what the file holds instead of pandas' message about scalar values."""
    try:
        return pd.read_json(path)
    except ValueError as e:
        import json

        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise e from None  # not JSON at all: the caller reports pandas' reason
        what = (f"an object whose keys ({', '.join(list(map(str, obj))[:4])}) are not columns of rows"
                if isinstance(obj, dict) else f"a JSON {type(obj).__name__}")
        raise TableError(f"is JSON but neither a table of points nor a saved fit: it holds {what}",
                         field=str(path), fix="give a list of rows such as [{\"params\": 1e6, \"tokens\": 1e8, "
                         "\"loss\": 3.1}, ...], a CSV table, or a fit saved by `scaling fit -o fit.json`") from None


def _refuse_saved_fit(path: Path) -> None:
    """A fit saved with ``.save()`` is a JSON object with a ``kind``; read as a table it
    fails with pandas' "All arrays must be of the same length". Say what it is instead."""
    import json

    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not JSON at all: pandas says so
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if not isinstance(kind, str):
        return
    if kind == "CurveFit":
        use = f"predict a schedule with it: `scaling curve predict {path} SCHEDULE`"
    else:
        use = (f"answer from it with `scaling extrapolate {path} --models 7e9,13e9 --target 65e9:1.4e12`, or "
               f"give `--law {path}` to plot or report with a table")
    raise InputError(f"is a saved fit ({kind}), not a table of points", field=str(path),
                     fix=use + "; to fit, give a sweep directory or a table of points")


def _map_columns(df: pd.DataFrame, columns: Mapping[str, str]) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    rename: dict[str, str] = {}
    for canon, src in columns.items():
        if src not in df.columns:
            raise TableError(f"--columns maps {canon} to {src!r}, which the table lacks", field="columns",
                             fix="use one of the table's columns: " + ", ".join(map(str, df.columns)))
        rename[src] = canon
    taken = set(rename.values())
    for col in df.columns:
        if col in rename:
            continue
        canon = ALIASES.get(_key(col))
        if canon is None or canon in taken:
            continue
        # An exact canonical name wins over an alias of it ('loss' beats 'val_loss').
        if col != canon and canon in df.columns:
            continue
        rename[col] = canon
        taken.add(canon)
        if col != canon:
            notes.append(f"column {col!r} read as {canon}")
    dropped = [c for c in df.columns if c not in rename and c in CANONICAL]
    out = df.drop(columns=dropped).rename(columns=rename)
    return out, notes


def load_points(source, columns: Mapping[str, str] | str | None = None, policy: str = "raise") -> pd.DataFrame:
    """One row per observed point with canonical columns (see the module docstring).

    ``source`` is a sweep or run directory (read through :func:`analysis.common.records.points_table`),
    a CSV / TSV / Parquet / JSON-lines file, a DataFrame, or the name of a shipped public
    dataset such as ``"porian2024:rw/tuned/short/const/standard/val"`` (see
    :mod:`analysis.data.datasets`). ``columns`` maps canonical
    names to the source's columns (``{"params": "Model Size"}`` or
    ``"params=Model Size,tokens=Training Tokens"``). When ``tokens`` is absent but
    ``flops`` and ``params`` are present, tokens are C / 6N (as the Chinchilla
    replication reconstructs them); when ``flops`` is absent it is 6ND.

    ``policy`` says what to do with bad rows (missing, non-finite or non-positive values in
    a numeric column, and rows repeated verbatim): ``"raise"`` refuses the table with a
    :class:`~analysis.common.errors.TableError` naming the rows, ``"omit"`` drops them with a
    warning. What was done is listed in ``df.attrs["notes"]`` (see :func:`table_notes`).
    """
    if policy not in POLICIES:
        raise InputError(f"unknown policy {policy!r}", field="policy", fix="use 'raise' or 'omit'")
    raw, origin = _read_source(source, policy)
    if raw.empty:
        raise TableError("the table has no rows", field=origin, fix="give at least a few observed points")
    read_notes = list(raw.attrs.pop("_read_notes", []))
    raw, status_notes = _finished_rows(raw, origin)
    df, notes = _map_columns(raw, parse_columns(columns))
    notes = read_notes + status_notes + notes

    derive_tokens = "tokens" not in df.columns and {"flops", "params"} <= set(df.columns)
    missing = [c for c in REQUIRED if c not in df.columns and not (c == "tokens" and derive_tokens)]
    if missing:
        raise TableError(f"missing column(s) {', '.join(missing)}", field="columns",
                         fix="name them params, tokens, loss, or map yours with --columns "
                             "(e.g. --columns 'params=Model Size,tokens=Training Tokens,loss=loss'); "
                             "the table has: " + ", ".join(map(str, raw.columns)))

    for col in _POSITIVE:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)

    bad = _bad_rows(df)
    if bad:
        summary = "; ".join(f"{len(rows)} row(s) with {what} (rows {_rows(rows)})" for (_, what), rows in bad.items())
        if policy == "raise":
            raise TableError(summary, field=next(iter(bad))[0],
                             fix="clean the table, or drop such rows with policy='omit' (--on-bad-rows omit)")
        drop = sorted(set().union(*bad.values()))
        df = df.drop(index=df.index[drop])
        notes.append(f"dropped {len(drop)} bad row(s): {summary}")
        warnings.warn(f"{origin}: dropped {len(drop)} bad row(s): {summary}")
    if df.empty:
        raise TableError("no usable rows left", field=origin, fix="check the table's values")
    # Derived columns come after the checks, so that a bad input is reported once, by its own name.
    if derive_tokens:
        df["tokens"] = df["flops"] / (6.0 * df["params"])
        notes.append("tokens computed as flops / (6 * params) (Kaplan et al. 2020, C = 6ND)")
    if "flops" not in df.columns:
        with np.errstate(over="ignore"):
            df["flops"] = 6.0 * df["params"] * df["tokens"]
        notes.append("flops computed as 6 * params * tokens (no FLOP column given)")
    for col in ("tokens", "flops"):
        # A derived column can overflow even when its inputs are finite (N near 1e308).
        v = df[col].to_numpy(dtype=float)
        if not np.all(np.isfinite(v)):
            rows = np.flatnonzero(~np.isfinite(v)).tolist()
            raise TableError(f"{col} derived from params and {'flops' if col == 'tokens' else 'tokens'} "
                             f"is not finite (rows {_rows(rows)})", field=col,
                             fix="check the params and tokens columns for absurd values")

    if "unique_tokens" in df.columns:
        _check_unique_tokens(df)
    order = [c for c in CANONICAL if c in df.columns] + [c for c in df.columns if c not in CANONICAL]
    df = df[order].reset_index(drop=True)
    if "run" in df.columns:
        df["run"] = df["run"].astype(str)
    df.attrs["notes"] = notes
    df.attrs["source"] = origin
    # A shipped dataset's own facts (its name, the loss noise its authors assume) stay with it.
    df.attrs.update({k: v for k, v in raw.attrs.items() if k in ("dataset", "loss_noise_sd")})
    return df


def _check_unique_tokens(df: pd.DataFrame) -> None:
    """A run cannot see more unique tokens than it trains on: U <= D (Muennighoff et al. 2023's
    table obeys it in every row). A small relative slack absorbs counts rounded in text."""
    over = np.flatnonzero(df["unique_tokens"].to_numpy(float) > df["tokens"].to_numpy(float) * (1 + 1e-6))
    if len(over):
        raise TableError(f"unique_tokens exceeds tokens in {len(over)} row(s) (rows {_rows(over.tolist())})",
                         field="unique_tokens",
                         fix="unique_tokens counts the distinct tokens a run repeats, at most its training tokens; "
                             "check the two columns are not swapped")


def _finished_rows(df: pd.DataFrame, origin: str) -> tuple[pd.DataFrame, list[str]]:
    """A sweep index (``runs.csv``) lists every run, finished or not. Keep the points whose
    loss is final: completed runs' final points and finished WSD branch points (a branch's
    loss is final once written, even while its run goes on). Diverged runs are excluded
    with a warning, so a bad run never reaches a fit."""
    if "status" not in df.columns:
        return df, []
    status = df["status"].astype(str)
    branch = df["point"].astype(str).str.startswith("branch") if "point" in df.columns else False
    keep = (status == "completed") | (branch & (status != "diverged") & (status != "failed"))
    notes = []
    diverged = sorted(set(df.loc[status == "diverged", "run"].astype(str))) if "run" in df.columns else []
    if diverged:
        warnings.warn(f"{origin}: excluded diverged run(s) {', '.join(diverged)}")
        notes.append(f"excluded diverged run(s): {', '.join(diverged)}")
    dropped = int((~keep).sum())
    if dropped:
        counts = status[~keep].value_counts().to_dict()
        notes.append("left out %d point(s) of unfinished runs (%s)"
                     % (dropped, ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))))
    out = df[keep].reset_index(drop=True)
    if out.empty:
        raise TableError("no completed run or finished branch point in the table", field=origin,
                         fix="wait for runs to complete (see `scaling runs SWEEP_DIR`)")
    return out, notes


def _bad_rows(df: pd.DataFrame) -> dict[tuple[str, str], list[int]]:
    """Positional indices of bad rows keyed by (column, reason), in a stable order."""
    out: dict[tuple[str, str], list[int]] = {}
    for col in _POSITIVE:
        if col not in df.columns:
            continue
        v = df[col].to_numpy(dtype=float)
        nan = np.where(~np.isfinite(v))[0]
        if len(nan):
            out[(col, f"a missing or non-finite {col}")] = nan.tolist()
        nonpos = np.where(np.isfinite(v) & (v <= 0))[0]
        if len(nonpos):
            out[(col, f"a non-positive {col}")] = nonpos.tolist()
    key = [c for c in ("run", "step", "params", "tokens", "flops", "loss") if c in df.columns]
    dup = np.where(df.duplicated(subset=key, keep="first").to_numpy())[0]
    if len(dup):
        out[("rows", "the same " + "/".join(key) + " as an earlier row")] = dup.tolist()
    return out


def _rows(idx: list[int], limit: int = 5) -> str:
    # Row numbers as a spreadsheet shows them: 1-based, header excluded.
    shown = ", ".join(str(i + 1) for i in idx[:limit])
    return shown + (f", ... {len(idx) - limit} more" if len(idx) > limit else "")


def table_notes(df: pd.DataFrame) -> list[str]:
    """What :func:`load_points` did to the table (columns renamed, values computed, rows dropped)."""
    return list(df.attrs.get("notes", []))


def describe_points(df: pd.DataFrame) -> dict:
    """Counts a fit's report needs: points, distinct sizes, distinct token budgets, runs, ranges."""
    return {
        "n_points": int(len(df)),
        "n_sizes": _n_distinct(df["params"]),
        "n_budgets": _n_distinct(df["tokens"]),
        "n_runs": int(df["run"].nunique()) if "run" in df.columns else None,
        "data_range": {
            "N": (float(df["params"].min()), float(df["params"].max())),
            "D": (float(df["tokens"].min()), float(df["tokens"].max())),
            "C": (float(df["flops"].min()), float(df["flops"].max())) if "flops" in df.columns else None,
        },
    }


def _n_distinct(values, rtol: float = 1e-3) -> int:
    """Distinct values up to a relative tolerance (sizes read back from text differ in the last digits)."""
    v = np.sort(np.log(np.asarray(values, dtype=float)))
    if len(v) == 0:
        return 0
    return int(1 + np.sum(np.diff(v) > rtol))

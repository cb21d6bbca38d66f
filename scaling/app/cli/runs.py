"""``scaling runs SWEEP_DIR``: the sweep index as a table, with run counts by status."""
# Deferred imports: sweeps.index (Hydra) is imported inside run because `scaling --help` imports
# every subcommand's module to build its parser; the analysis.common ones are light and sit
# beside it only to keep the command's imports together.
from __future__ import annotations

from scaling.app.cli._common import add_command, print_json


def add_parser(sub) -> None:
    p = add_command(
        sub, "runs",
        help="List the runs of a sweep (one row per run and per WSD branch point) with counts by status.",
        example="scaling runs demo_out/runs --reindex",
        func=run,
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR",
                   help="a sweep directory (sweep.root), a run directory, or a runs.csv / runs.parquet file")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON: sweep_dir, counts and one object per row")
    out.add_argument("--csv", action="store_true", help="print the index as CSV")
    p.add_argument("--reindex", action="store_true",
                   help="also (re)write SWEEP_DIR/runs.csv and runs.parquet from the run records")
    p.add_argument("--status", metavar="S[,S...]",
                   help="show only runs with these statuses (completed, running, interrupted, resumable, "
                        "failed, diverged)")
    p.add_argument("--final", action="store_true", help="one row per run (its final point), no branch rows")


def run(args) -> int:
    from pathlib import Path

    from analysis.common.errors import InputError
    from analysis.common.text import format_table, num, sci, si
    from sweeps.index import STATUS_ORDER, format_counts, read_index, status_counts, write_index

    wanted = [s.strip() for s in (args.status or "").split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUS_ORDER]
    if unknown:  # checked before any reading, so the error names the option, not the data
        raise InputError(f"unknown status {unknown[0]!r}", field="--status",
                         fix="use any of " + ", ".join(STATUS_ORDER))
    path = Path(args.sweep_dir)
    written = None
    if args.reindex:
        if not path.is_dir():
            raise InputError("--reindex needs a sweep directory", field="SWEEP_DIR",
                             fix="point at the directory holding the runs, e.g. demo_out/runs")
        from analysis.common.errors import RecordError
        from analysis.common.records import check_output, find_run_dirs, writing_output

        if not find_run_dirs(path):  # an empty index would make the directory look like a sweep
            raise RecordError(f"no run records under {path} (no summary.json below it); nothing written",
                              field="--reindex", fix="point at the sweep's directory (sweep.root), e.g. demo_out/runs")
        check_output(path, "--reindex", directory=True)
        with writing_output("--reindex", path / "runs.csv"):
            written = write_index(path)
    df = read_index(path)
    counts = status_counts(df)
    if wanted:
        df = df[df["status"].isin(wanted)]
    if args.final:
        df = df[df["point"] == "final"]
    rows = [{k: (None if _missing(v) else v) for k, v in r.items()} for r in df.to_dict("records")]

    if args.json:
        print_json({"sweep_dir": str(path), "counts": counts, "runs": len(set(r["run"] for r in rows)),
                    "points": len(rows), "index": written, "rows": rows})
        return 0
    if args.csv:
        print(df.to_csv(index=False), end="")
        return 0
    for r in rows:
        r["name"] = _readable(r["run"])
        r["error"] = _short(r.get("error"))
    cols = ["name", "point", "status", "params", "tokens", "tokens_per_param", "flops", "loss", "bpb", "error"]
    if "bpb" not in df.columns:  # records written before bits per byte was kept
        cols.remove("bpb")
    if not any(r.get("error") for r in rows):
        cols.remove("error")
    print(format_table(rows, cols, formats={"params": si, "tokens": si, "flops": sci, "tokens_per_param": _tpp,
                                            "loss": lambda x: num(x, 4), "bpb": lambda x: num(x, 4),
                                            "error": lambda x: x or ""},
                       headers={"name": "run", "tokens_per_param": "tok/param", "flops": "FLOPs (detailed)",
                                "loss": "val loss", "bpb": "bits/byte"}))
    print(f"\n{format_counts(counts)}; {int(df.shape[0])} points shown")
    # Fits and reports count 6ND, which differs from the detailed count by up to 2x at these sizes.
    print("FLOPs (detailed): the model's count per token (Hoffmann et al. 2022, App. F) x tokens; "
          "6ND is flops_6n in --json and --csv")
    if "bpb" in cols:
        print("bits/byte: val loss / ln 2 / bytes of held-out text per token (Gao et al. 2020), comparable "
              "across tokenizers" + ("; - where the bytes are unknown (pre-tokenized shards) or the record "
                                     "predates them" if any(r.get("bpb") is None and r.get("loss") is not None
                                                            for r in rows) else ""))
    if written:
        print(f"index written: {written['csv']}" + (f" and {written['parquet']}" if written["parquet"] else ""))
    return 0


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _readable(run: str) -> str:
    # "model=micro,tokens=20M-1a2b3c4d" -> "model=micro,tokens=20M"; the hash stays in --json/--csv.
    head, _, tail = str(run).rpartition("-")
    return head if head and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail) else str(run)


def _tpp(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _short(err, width: int = 60):
    if not err:
        return err
    return err if len(err) <= width else err[: width - 3] + "..."

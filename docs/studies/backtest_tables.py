"""The backtest tables of ``docs/analysis.md``: ``python docs/studies/backtest_tables.py``.

Every candidate law, and ``auto``, refitted without the largest runs of each public ladder
the toolkit ships (the 15 configurations of Porian et al. 2024, each whole and as its
over-trained part) and of the demo sweep, and scored on the held-out points.

``auto``'s own error is measured honestly (:func:`nested_auto`): for each split, the law
is chosen by :func:`analysis.selection.backtest.select_law` on that split's training points only
(an inner backtest of the training part), and that law's error on the held-out points is
auto's. Choosing with the held-out points in view would make auto the best law by
construction.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.data.datasets import list_datasets, load
from analysis.selection.backtest import (SPLITS, BacktestResult, _prepare, auto_candidates, backtest, held_out_errors,
                                 select_law, splits_for)

__all__ = ["AUTO_ROW", "OVERTRAINED_TPP", "Ladder", "ladders", "nested_auto", "ladder_summary", "main",
           "replace_block", "DEMO_POINTS"]

AUTO_ROW = "auto"
#: Tokens per parameter from which a point counts as over-trained: Hoffmann et al. 2022's
#: compute-optimal ratio is about 20 (Gadre et al. 2024 over-train from there to 640).
OVERTRAINED_TPP = 20.0
#: The 16 points of the demo's first design (nano to mini, its largest model undertrained;
#: the final point and cooldown branches of each run), on which the earlier rule was measured.
DEMO_POINTS = Path(__file__).resolve().parents[2] / "docs" / "data" / "first_demo_points.csv"


@dataclass
class Ladder:
    name: str
    points: pd.DataFrame
    overtrained: bool = False


def ladders(which: Sequence[str] = ("porian", "overtrained", "demo")) -> list[Ladder]:
    """The tables the docs backtest: each Porian configuration whole (``porian``), its points
    at ``OVERTRAINED_TPP`` tokens per parameter or more (``overtrained``), and the demo."""

    out = []
    names = [n for n in list_datasets() if n.startswith("porian2024:")]
    for n in names:
        df = load(n)
        if "porian" in which:
            out.append(Ladder(n, df))
        if "overtrained" in which:
            ot = df[df["tokens"] / df["params"] >= OVERTRAINED_TPP].reset_index(drop=True)
            out.append(Ladder(n + f" (D/N >= {OVERTRAINED_TPP:g})", ot, overtrained=True))
    if "demo" in which and DEMO_POINTS.exists():
        out.append(Ladder("demo sweep", pd.read_csv(DEMO_POINTS)))
    return out


@dataclass
class NestedRow:
    split: str
    chosen: str
    mean_rel_error: float | None
    max_rel_error: float | None
    reason: str = ""
    #: the choice's size cut and, for a combination, its weights
    keep: float = 1.0
    weights: dict | None = None


def nested_auto(points: pd.DataFrame, outer: BacktestResult, laws: Sequence[str] | None = None,
                splits: Sequence[str] = SPLITS, **fit_options) -> list[NestedRow]:
    """Auto's held-out error on each split of ``outer``, with the law chosen on that split's
    training points alone (an inner backtest of the training part, then
    :func:`~analysis.selection.backtest.select_law`)."""

    df = _prepare(points)
    chosen, _ = splits_for(df, splits)
    outers = {outer.keep: outer}
    out = []
    for sp in chosen:
        train = df[~sp.test].reset_index(drop=True)
        choice = select_law(train, laws=laws, splits=splits, **fit_options)
        if choice.keep not in outers:  # the outer refits cut as the choice's fit would be
            outers[choice.keep] = backtest(df, laws=outer.laws, splits=splits, keep=choice.keep, reuse=outer,
                                           **fit_options)
        # the chosen law's (or combination's) error on this split's held-out points
        rows = held_out_errors(outers[choice.keep], choice.law, choice.weights)
        row = next((r for r in rows if r["split"] == sp.name), None)
        out.append(NestedRow(sp.name, choice.label, row and row["mean_rel_error"],
                             row and row["max_rel_error"], choice.reason, choice.keep, choice.weights))
    return out


@dataclass
class LadderSummary:
    name: str
    n_points: int
    n_sizes: int
    splits: list[str]
    per_law: dict[str, tuple[float | None, float | None]]
    chosen: list[str] = field(default_factory=list)
    seconds: float = 0.0
    overtrained: bool = False


def ladder_summary(ladder: Ladder, laws: Sequence[str] | None = None) -> LadderSummary:
    """Mean (over splits) of the mean held-out error and max over splits of the max error,
    per law and for nested auto."""
    t = time.perf_counter()
    df = ladder.points
    laws = tuple(laws) if laws else auto_candidates(df)
    res = backtest(df, laws=laws)
    per = {}
    for law, s in res.summary().items():
        per[law] = (s["mean_rel_error"], s["max_rel_error"]) if not s["failed"] else (None, None)
    nest = nested_auto(df, res, laws=laws)
    ok = [r for r in nest if r.max_rel_error is not None]
    per[AUTO_ROW] = ((float(np.mean([r.mean_rel_error for r in ok])), float(np.max([r.max_rel_error for r in ok])))
                     if ok and len(ok) == len(nest) else (None, None))
    return LadderSummary(ladder.name, len(df), int(df["params"].nunique()),
                         sorted({r.split for r in res.rows}, key=SPLITS.index), per,
                         [f"{r.split}:{r.chosen}" for r in nest], time.perf_counter() - t, ladder.overtrained)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


_SPLIT_ABBR = {"largest_size": "S", "two_largest_sizes": "S2", "largest_compute": "C"}


def markdown(summaries: list[LadderSummary], laws: Sequence[str]) -> str:
    cols = list(laws) + [AUTO_ROW]
    head = "| table | pts | sizes | splits | " + " | ".join(f"{c} mean / max" for c in cols) + " | auto chose |"
    lines = [head, "|" + "---|" * (5 + len(cols))]
    for s in summaries:
        cells = [f"{_pct(s.per_law[c][0])} / {_pct(s.per_law[c][1])}" for c in cols]
        chose = ", ".join(f"{_SPLIT_ABBR[c.split(':')[0]]}:{c.split(':')[1]}" for c in s.chosen)
        name = s.name.replace("porian2024:", "")
        lines.append(f"| {name} | {s.n_points} | {s.n_sizes} | {'+'.join(_SPLIT_ABBR[x] for x in s.splits)} | "
                     + " | ".join(cells) + f" | {chose} |")
    return "\n".join(lines)


def averages(summaries: list[LadderSummary], laws: Sequence[str]) -> str:
    """Per group of tables: the average of mean errors, the average and the largest of max errors."""
    groups = {"Porian, all points (15)": [s for s in summaries if s.name.startswith("porian") and not s.overtrained],
              "Porian, over-trained part (15)": [s for s in summaries if s.overtrained],
              "demo sweep": [s for s in summaries if s.name == "demo sweep"]}
    groups[f"all tables ({len(summaries)})"] = list(summaries)
    cols = list(laws) + [AUTO_ROW]
    lines = ["| group | " + " | ".join(f"{c}: avg mean / avg max / max" for c in cols) + " |",
             "|" + "---|" * (1 + len(cols))]
    for g, ss in groups.items():
        if not ss:
            continue
        cells = []
        for c in cols:
            vals = [s.per_law[c] for s in ss if s.per_law[c][0] is not None]
            if not vals:
                cells.append("-")
                continue
            mean = np.mean([v[0] for v in vals])
            mx = np.mean([v[1] for v in vals])
            cells.append(f"{_pct(mean)} / {_pct(mx)} / {_pct(max(v[1] for v in vals))}")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    """Replace what lies between ``<!-- NAME begin -->`` and ``<!-- NAME end -->``."""
    pat = re.compile(rf"(<!-- {re.escape(name)} begin -->\n).*?(<!-- {re.escape(name)} end -->)", re.S)
    if not pat.search(text):
        raise ValueError(f"no block {name!r} in the page")
    return pat.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python docs/studies/backtest_tables.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--which", default="porian,overtrained,demo",
                    help="comma-separated: porian (whole tables), overtrained (D/N >= 20 part), demo")
    ap.add_argument("--write-docs", metavar="PAGE", help="replace the backtest blocks of this markdown page")
    args = ap.parse_args(argv)
    laws = auto_candidates()
    summaries = []
    for lad in ladders(tuple(args.which.split(","))):
        s = ladder_summary(lad, laws)
        summaries.append(s)
        print(f"{s.name}: {s.seconds:.1f} s; " + ", ".join(
            f"{k} {_pct(v[0])}/{_pct(v[1])}" for k, v in s.per_law.items()) + "; auto chose " + ", ".join(s.chosen),
            file=sys.stderr, flush=True)
    table, avg = markdown(summaries, laws), averages(summaries, laws)
    print(avg + "\n\n" + table)
    if args.write_docs:
        page = Path(args.write_docs)
        text = replace_block(page.read_text(), "backtest:averages", avg)
        text = replace_block(text, "backtest:tables", table)
        page.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Plain-text formatting shared by reports and the CLI: numbers with SI suffixes, aligned
and Markdown tables."""
from __future__ import annotations

import math
from typing import Any, Sequence

_SI = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def si(x: float | None, digits: int = 3) -> str:
    """1.234e9 -> '1.23B'; counts of parameters and tokens read best this way."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    ax = abs(x)
    units = ((1.0, ""),) + tuple(reversed(_SI))  # 1, k, M, B, T
    i = next((k for k in range(len(units) - 1, 0, -1) if ax >= units[k][0]), 0)
    text = f"{x / units[i][0]:.{digits}g}"
    if "e+" in text:  # rounds up to 1000 of this unit: the next one, or plain scientific past T
        if i + 1 < len(units):
            return f"{x / units[i + 1][0]:.{digits}g}{units[i + 1][1]}"
        return f"{x:.{digits}g}"
    return text + units[i][1]


def model_label(params: float, name: str | None = None, prefix: str = "") -> str:
    """How tables and figures name a model: ``nano (123k)`` when its name (a preset's, from
    the run records) is known, else its size alone, after ``prefix`` (figures: ``N=123k``).
    A name that already shows the size (``123k``, ``LLaMA-7B`` for 7B) is not repeated."""
    size = si(float(params))
    if not name or str(name) == size:
        return prefix + size
    return str(name) if size in str(name) else f"{name} ({size})"


def sci(x: float | None, digits: int = 3) -> str:
    """Scientific notation for FLOPs and other quantities spanning many decades."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits - 1}e}"


def num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}g}"


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None,
                 formats: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> str:
    """Align ``rows`` (dicts) under ``columns``. ``formats`` maps a column to a callable
    turning a value into text (default :func:`num`); ``headers`` renames columns."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    formats = formats or {}
    headers = headers or {}
    cells = [[headers.get(c, c) for c in columns]]
    for r in rows:
        cells.append([formats.get(c, num)(r.get(c)) for c in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = [all(_looks_numeric(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(columns))]
    lines = []
    for j, row in enumerate(cells):
        parts = [cell.rjust(w) if isnum else cell.ljust(w) for cell, w, isnum in zip(row, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def wrapped_table(rows: Sequence[dict], columns: Sequence[str] | None = None,
                  formats: dict[str, Any] | None = None, width: int = 116) -> str:
    """:func:`format_table`, split into blocks of columns at most ``width`` characters wide
    (a terminal's 120 less an indent), each block repeating the first column so that every
    line names its row; blocks are separated by a blank line. One column wider than
    ``width`` beside the first stands in a block of its own."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    formats = formats or {}
    if len(columns) < 2:
        return format_table(rows, columns, formats)
    widths = {c: max([len(c)] + [len(formats.get(c, num)(r.get(c))) for r in rows]) for c in columns}
    key, rest = columns[0], list(columns[1:])
    blocks, block, used = [], [], widths[key]
    for c in rest:
        if block and used + 2 + widths[c] > width:
            blocks.append(block)
            block, used = [], widths[key]
        block.append(c)
        used += 2 + widths[c]
    blocks.append(block)
    return "\n\n".join(format_table(rows, [key, *b], formats) for b in blocks)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None,
                   formats: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> str:
    """A GitHub-style pipe table of ``rows`` (dicts). Without ``formats`` the cells are
    text already (None is left empty); with it, each cell is formatted as
    :func:`format_table` does (``formats`` per column, :func:`num` otherwise).
    ``headers`` renames columns."""
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    if not columns:
        return ""
    headers = headers or {}

    def text(c, x) -> str:
        return ("" if x is None else str(x)) if formats is None else formats.get(c, num)(x)

    def cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(headers.get(c, c)) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(text(c, r.get(c))) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _looks_numeric(s: str) -> bool:
    s = s.strip().rstrip("kMBTx%")
    if s in ("-", "inf", "-inf"):
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False



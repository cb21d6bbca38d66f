"""Write benchmark tables into ``docs/benchmarks.md`` in place (``--write-docs``).

Numbers in the docs are never typed by hand: each table lives between a pair of
markers, ``<!-- bench:NAME begin -->`` and ``<!-- bench:NAME end -->``, and a benchmark
run on a GPU replaces what stands between them (the trainer's CPU table, block
``train-cpu``, comes from a CPU run on a quiet machine). Everything outside the markers is kept
byte for byte, and the file is written atomically, so an interrupted run leaves the old
page whole.
"""
# Deferred imports: analysis.common.errors and analysis.common.records are imported inside the
# functions for no start-up gain (both are light) and may move to the top.
from __future__ import annotations

import re
from pathlib import Path


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"


def replace_blocks(text: str, blocks: dict[str, str], *, source: str = "the page") -> str:
    """``text`` with the body of each named block replaced by ``blocks[name]``.

    Raises InputError naming the missing marker when a block is absent or its markers
    appear more than once or out of order: writing elsewhere would bury the table.
    """
    from analysis.common.errors import InputError

    for name, body in blocks.items():
        begin, end = _markers(name)
        found = [(m.start(), m.group()) for m in re.finditer(re.escape(begin) + "|" + re.escape(end), text)]
        if [g for _, g in found] != [begin, end]:
            raise InputError(f"{source} needs exactly one '{begin}' followed by one '{end}' "
                             f"(found {len(found)} such markers)", field="--write-docs",
                             fix="restore the markers from the repository's docs/benchmarks.md")
        start, stop = found[0][0] + len(begin), found[1][0]
        text = text[:start] + "\n" + body.strip("\n") + "\n" + text[stop:]
    return text


def _read(path: Path) -> str:
    from analysis.common.errors import InputError

    if not path.is_file():
        raise InputError(f"{path} does not exist", field="--write-docs", fix="pass docs/benchmarks.md")
    return path.read_text(encoding="utf-8")


def check_target(path: str | Path, names: list[str], device_type: str) -> None:
    """Fail before any timing when ``--write-docs`` could not be honoured at the end:
    a CPU run (its timings are not the GPU tables' numbers) or a page without the markers."""
    from analysis.common.errors import InputError

    if device_type != "cuda":
        raise InputError("the tables in the docs are GPU measurements; this run is on the CPU",
                         field="--write-docs", fix="run it on a CUDA machine, or leave --write-docs out")
    check_blocks(path, names)


def check_blocks(path: str | Path, names: list[str]) -> None:
    """Fail before any work when the page at ``path`` lacks one of the named blocks."""
    path = Path(path)
    replace_blocks(_read(path), {n: "" for n in names}, source=str(path))


def blocks_in(path: str | Path, names: list[str]) -> list[str]:
    """Those of ``names`` whose markers the page at ``path`` holds (a block whose markers
    are there but broken fails as in :func:`replace_blocks`)."""
    path = Path(path)
    text = _read(path)
    found = [n for n in names if any(m in text for m in _markers(n))]
    replace_blocks(text, {n: "" for n in found}, source=str(path))
    return found


def write_blocks(path: str | Path, blocks: dict[str, str]) -> None:
    """Replace the named blocks of the Markdown file at ``path``, atomically."""
    from analysis.common.records import atomic_write_text

    path = Path(path)
    atomic_write_text(path, replace_blocks(_read(path), blocks, source=str(path)))
    print(f"wrote the {', '.join(blocks)} tables into {path}")

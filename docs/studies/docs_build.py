"""``make docs``: regenerate the README's console blocks and figures from real commands.

Every console block of README.md sits between ``<!-- docs:NAME begin -->`` and
``<!-- docs:NAME end -->``; :data:`BLOCKS` says which commands make it and which lines of
their output it shows. The builder runs each command as a user would (``python -m
scaling ...`` in a scratch directory, or the demo in the demo directory), pastes the
selected output between the markers, copies the demo's figures into ``docs/img/``, writes
the machine and date into the ``docs:machine`` block, and saves the demo's run records
(without checkpoints) and its (N, D, loss) points under ``docs/data/``, so the analysis can
be redone without training (``tests/test_docs.py`` does, and compares with the README).

The demo reuses finished runs: ``--reuse-committed`` first copies the committed records
into an empty demo directory, so the whole build trains nothing but the single
``scaling train`` example (about 15 s on 2 cores).

    python docs/studies/docs_build.py --demo-dir demo_out            # what `make docs` runs
    python docs/studies/docs_build.py --demo-dir demo_out --check    # compare only; exit 1 on a difference

The builder only runs commands and pastes their output: a changed table or figure in the
toolkit shows up in the README on the next build, with nothing edited by hand.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

from analysis.common.records import points_table
from backtest_tables import replace_block as _replace

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DATA = ROOT / "docs" / "data"
#: The demo's run records as committed: config, metrics, branches and summary of each run.
DEMO_RUNS = DATA / "demo_runs"
DEMO_POINTS = DATA / "demo_points.csv"
#: Files of a run record the analysis reads (checkpoints, logs and attempt records stay out).
RECORD_FILES = ("config.yaml", "metrics.jsonl", "branches.jsonl", "summary.json")
#: README figure -> the demo report's file it is copied from.
FIGURES = {"docs/img/demo_curves.png": "report/curves.png"}
#: How far a fresh training run's logged losses may lie from the committed records
#: (relative), as the README states it: CPU kernels differ between machines, and the
#: difference grows over a run (final losses differ in the third decimal).
PREFIX_TOLERANCE = 2e-3


@dataclass
class Step:
    """One command of a block: ``argv`` after ``python -m scaling`` (or a full argv when
    ``module`` is None), shown as ``$ shown`` (nothing when ``shown`` is None); ``start`` /
    ``stop`` (regexes) cut its output to the lines from the first ``start`` match up to the
    line before the next ``stop`` match, ``keep`` filters what is left, and ``ellipsis``
    puts a ``...`` line before the excerpt."""

    argv: Sequence[str]
    shown: Optional[str] = None
    module: Optional[str] = "scaling"
    start: Optional[str] = None
    stop: Optional[str] = None
    keep: Optional[Callable[[str], bool]] = None
    ellipsis: bool = False
    cwd: str = "scratch"     # "scratch": a fresh temporary directory; "demo": the demo directory's parent
    file: Optional[str] = None  # read this file (relative to the demo directory) instead of running


@dataclass
class Block:
    name: str
    steps: list
    lang: str = "console"
    #: Redone by the test suite from the committed records (cheap and deterministic).
    checked: bool = True
    #: Lines whose numbers are timings: compared with their digits masked.
    volatile: tuple = ()


def _train_lines(line: str) -> bool:
    """The training example's step lines with a validation loss, and every other line."""
    return not line.startswith("step ") or " val " in line


DEMO = "{demo}"   # the demo directory's name, filled in when the block runs

BLOCKS = [
    Block("demo", [Step(["demo", "--out", DEMO], cwd="demo", start=r"^\[3/4\]")],
          volatile=(r"^Done in ",)),
    Block("report-fit", [Step([], file="report/report.md", start=r"^\[\[", stop=r"^```")], lang="text"),
    Block("train", [Step(["train", "model=nano", "tokens=1e6", "out=runs/nano"],
                         shown="scaling train model=nano tokens=1e6 out=runs/nano", keep=_train_lines)],
          checked=False, volatile=(r"^step ", r"^tokenized ", r"^tokens ")),
    Block("fit-synthetic", [
        Step(["-c", "from analysis.data.synthetic import synthetic_table; synthetic_table().to_csv('points.csv', index=False)"],
             module=None, shown="python -c \"from analysis.data.synthetic import synthetic_table; "
                                "synthetic_table().to_csv('points.csv', index=False)\""),
        Step(["fit", "points.csv", "--bootstrap", "1000", "--predict", "70e9:1.4e12", "--compute", "5.76e23",
              "--quiet"], shown="scaling fit points.csv --bootstrap 1000 --predict 70e9:1.4e12 --compute 5.76e23 "
                                "--quiet")], checked=False),
    Block("backtest", [
        Step(["-c", "from analysis.data.synthetic import synthetic_table; synthetic_table().to_csv('points.csv', index=False)"],
             module=None),
        Step(["fit", "points.csv", "--backtest", "--law", "chinchilla", "--quiet"],
             shown="scaling fit points.csv --backtest --law chinchilla --quiet", start=r"^\[\[Backtest\]\]",
             stop=r"^\[\[(?!Backtest)", ellipsis=True)]),
    Block("llama", [Step(["extrapolate", "--published", "llama"], shown="scaling extrapolate --published llama")]),
    Block("llama-unique", [Step(["extrapolate", "--published", "llama", "--unique-tokens", "1.4e12"],
                                shown="scaling extrapolate --published llama --unique-tokens 1.4e12",
                                start=r"^Law: muennighoff2023", stop=r"^={10,}", ellipsis=True)]),
]


class DocsError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- running


def _env() -> dict:
    """The environment of every command: this checkout's code first, one line per step."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("SCALING_FAULT", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def excerpt(text: str, step: Step) -> list[str]:
    """The lines of ``text`` a step shows."""
    lines = text.rstrip("\n").splitlines()
    if step.start:
        at = next((i for i, ln in enumerate(lines) if re.search(step.start, ln)), None)
        if at is None:
            raise DocsError(f"no line matching {step.start!r} in the output of {step.shown or step.argv}")
        lines = lines[at:]
    if step.stop:
        end = next((i for i, ln in enumerate(lines) if i > 0 and re.search(step.stop, ln)), len(lines))
        lines = lines[:end]
    if step.keep:
        lines = [ln for ln in lines if step.keep(ln)]
    while lines and not lines[-1].strip():
        lines.pop()
    return (["..."] if step.ellipsis else []) + lines


def _normalise(text: str, demo_dir: Path) -> str:
    """Machine paths out of the output: the demo directory's parent becomes ``...`` and its
    name ``demo_out``, as a reader's default ``make demo`` would print them."""
    parent = str(demo_dir.resolve().parent)
    text = text.replace(parent + os.sep, "..." + os.sep)
    if demo_dir.name != "demo_out":
        text = re.sub(rf"(?<![\w.-]){re.escape(demo_dir.name)}(?=/|'|\s|$)", "demo_out", text)
    return text.replace(str(Path.home()), "~")


def run_step(step: Step, demo_dir: Path, scratch: Path) -> str:
    if step.file is not None:
        path = demo_dir / step.file
        if not path.is_file():
            raise DocsError(f"{path} is missing: the demo did not write it")
        return path.read_text()
    argv = [a.replace(DEMO, demo_dir.name) for a in step.argv]
    cmd = [sys.executable] + (["-m", step.module] if step.module else []) + argv
    cwd = demo_dir.resolve().parent if step.cwd == "demo" else scratch
    # one stream, unbuffered: the lines in the order a terminal shows them
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise DocsError(f"`{' '.join(cmd[1:])}` exited {proc.returncode}: "
                        + (proc.stdout.strip().splitlines() or ["(no message)"])[-1])
    return proc.stdout


def render(block: Block, demo_dir: Path) -> str:
    """The block's body as it goes between its markers: the fenced console text."""
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scaling-docs-") as tmp:
        for step in block.steps:
            text = run_step(step, demo_dir, Path(tmp))
            if step.shown is not None:
                out.append("$ " + step.shown)
            elif step.module is None:
                continue   # a set-up command nobody needs to see
            out += excerpt(_normalise(text, demo_dir), step)
    return f"```{block.lang}\n" + "\n".join(out) + "\n```"


def machine_text(demo_runs: Path) -> str:
    """Where and when the blocks were made, and what the demo's runs were trained with."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import torch

        torch_v = torch.__version__
    except ImportError:
        torch_v = "not installed"
    trained = set()
    for s in sorted(demo_runs.glob("*/summary.json")):
        d = json.loads(s.read_text())
        v = d.get("versions", {})
        trained.add(f"torch {v.get('torch')}, Python {v.get('python')}, {d.get('device')}")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return (f"*Console blocks and figure generated by `make docs` on {when} on {cpu} ({cores} cores usable), "
            f"Python {platform.python_version()}, torch {torch_v}, from the demo's runs as trained with "
            + ("; ".join(sorted(trained)) or "(no runs found)")
            + ". Their records are committed in `docs/data/demo_runs/`: the test suite redoes the analysis from "
              "them and compares it with these blocks, and retrains the first steps of every run, whose logged "
              f"losses must agree with the records within {100 * PREFIX_TOLERANCE:g}% (`tests/test_docs.py`).*")


# ----------------------------------------------------------------------------- records


def _sanitised(name: str, text: str, run: str) -> str:
    """A record file without the paths of the machine that trained it."""
    if name == "config.yaml":
        return re.sub(r"(?m)^out: .*$", f"out: runs/{run}", text)
    if name == "summary.json":
        d = json.loads(text)
        if isinstance(d.get("data"), dict) and d["data"].get("cache"):
            d["data"]["cache"] = "~/.cache/scaling-toolkit/tokens/" + Path(d["data"]["cache"]).name
        return json.dumps(d, indent=2, sort_keys=True) + "\n"
    return text


def save_records(sweep_dir: Path, dest: Path = DEMO_RUNS, points: Path = DEMO_POINTS) -> list[str]:
    """Copy each finished run's record (:data:`RECORD_FILES`) into ``dest`` (replacing what
    was there) and write the sweep's (N, D, loss) points as ``points``."""
    runs = sorted(p.parent for p in sweep_dir.glob("*/summary.json")
                  if json.loads(p.read_text()).get("status") == "completed")
    if not runs:
        raise DocsError(f"no completed runs in {sweep_dir}")
    if dest.exists():
        shutil.rmtree(dest)
    for run in runs:
        (dest / run.name).mkdir(parents=True)
        for name in RECORD_FILES:
            src = run / name
            if src.exists():
                (dest / run.name / name).write_text(_sanitised(name, src.read_text(), run.name))
    write_points(dest, points)
    return [r.name for r in runs]


def points_frame(sweep_dir: Path):
    """The (N, D, loss) points of a sweep as docs/data/demo_points.csv holds them."""

    df = points_table(sweep_dir)
    df = df.sort_values(["params", "tokens"], kind="stable")
    return df[["params", "tokens", "loss", "flops", "run"]].reset_index(drop=True)


def write_points(sweep_dir: Path, path: Path = DEMO_POINTS) -> None:
    points_frame(sweep_dir).to_csv(path, index=False, float_format="%.10g")


def seed_demo(demo_dir: Path, records: Path = DEMO_RUNS) -> int:
    """Copy the committed run records into ``demo_dir/runs`` where a run is missing, so the
    demo reuses them instead of training. Returns how many it copied."""
    runs = demo_dir / "runs"
    n = 0
    for rec in sorted(p for p in records.iterdir() if p.is_dir()):
        if not (runs / rec.name / "summary.json").exists():
            shutil.copytree(rec, runs / rec.name, dirs_exist_ok=True)
            n += 1
    return n


# ----------------------------------------------------------------------------- the page


def block_of(text: str, name: str) -> str:
    """What lies between a block's markers in a page."""
    m = re.search(rf"<!-- docs:{re.escape(name)} begin -->\n(.*?)\n?<!-- docs:{re.escape(name)} end -->", text, re.S)
    if not m:
        raise DocsError(f"no block docs:{name} in the page (add <!-- docs:{name} begin --> and end markers)")
    return m.group(1).rstrip("\n")


def replace_block(text: str, name: str, body: str) -> str:

    try:
        return _replace(text, f"docs:{name}", body)
    except ValueError:
        raise DocsError(f"no block docs:{name} in the page (add <!-- docs:{name} begin --> and end markers)") \
            from None


def comparable(body: str, block: Block) -> list[str]:
    """The block's lines with the digits of its timing lines masked."""
    out = []
    for line in body.splitlines():
        if any(re.search(p, line) for p in block.volatile):
            line = re.sub(r"\d+(\.\d+)?", "#", line)
        out.append(line.rstrip())
    return out


def differences(page: str, name: str, body: str) -> list[str]:
    """A unified diff between the page's block and a fresh body (empty when they agree)."""
    block = next(b for b in BLOCKS if b.name == name)
    old, new = comparable(block_of(page, name), block), comparable(body, block)
    return list(difflib.unified_diff(old, new, f"README docs:{name}", "fresh", lineterm="", n=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python docs/studies/docs_build.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo-dir", default="demo_out", help="the demo's directory (runs/ and report/); default demo_out")
    ap.add_argument("--readme", default=str(README), help="the page to update (default README.md)")
    ap.add_argument("--only", help="comma-separated block names (default: all: "
                                   + ", ".join(b.name for b in BLOCKS) + ")")
    ap.add_argument("--reuse-committed", action="store_true",
                    help="copy docs/data/demo_runs into the demo directory first, so nothing of the demo is trained")
    ap.add_argument("--check", action="store_true", help="change nothing; print differences and exit 1 if any")
    args = ap.parse_args(argv)
    demo_dir = Path(args.demo_dir).expanduser()
    page_path = Path(args.readme)
    page = page_path.read_text()
    names = [n.strip() for n in args.only.split(",")] if args.only else [b.name for b in BLOCKS]
    unknown = sorted(set(names) - {b.name for b in BLOCKS})
    if unknown:
        print(f"error: --only: unknown block {unknown[0]!r} (fix: use one of {', '.join(b.name for b in BLOCKS)})",
              file=sys.stderr)
        return 2
    if args.reuse_committed:
        print(f"docs: {seed_demo(demo_dir)} committed run record(s) copied into {demo_dir / 'runs'}", flush=True)
    bodies, diffs = {}, []
    try:
        for block in BLOCKS:
            if block.name not in names:
                continue
            print(f"docs: {block.name} ...", flush=True)
            bodies[block.name] = render(block, demo_dir)
            diffs += differences(page, block.name, bodies[block.name])
    except DocsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print("\n".join(diffs) if diffs else "docs: the page agrees with a fresh build")
        return 1 if diffs else 0
    if "demo" in names:
        bodies["machine"] = machine_text(demo_dir / "runs")
        for fig, src in FIGURES.items():
            shutil.copyfile(demo_dir / src, ROOT / fig)
        saved = save_records(demo_dir / "runs")
        print(f"docs: {len(saved)} run record(s) and their points saved under {DATA.relative_to(ROOT)}/")
    new = page_path.read_text()   # read again: the page may have been edited during the build
    for name, body in bodies.items():
        new = replace_block(new, name, body)
    page_path.write_text(new)
    print(f"docs: {page_path} updated ({len(diffs)} changed line(s) in the blocks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo and the other commands agree: one sweep directory by default, one report,
preset names for models. On the tiny demo study of :mod:`demo_testing`."""
from __future__ import annotations

from pathlib import Path

import pytest

from demo_testing import TINY_OVERRIDES, TINY_RUNS, tiny_demo
from scaling.cli import main


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return tiny_demo(tmp_path_factory)


def test_sweep_dry_run_looks_where_the_demo_writes(tmp_path, monkeypatch):
    from scaling.defaults import DEMO_OUT, DEMO_SWEEP_SUBDIR
    from sweeps.launch import sweep_root

    monkeypatch.chdir(tmp_path)
    assert sweep_root("demo") == tmp_path / DEMO_OUT / DEMO_SWEEP_SUBDIR
    # `scaling demo` with no --out writes its sweep there too.
    from scaling.cli import build_parser

    args = build_parser(only="demo").parse_args(["demo"])
    assert Path(args.out) / DEMO_SWEEP_SUBDIR == Path(DEMO_OUT) / DEMO_SWEEP_SUBDIR


def test_sweep_dry_run_after_the_demo_has_nothing_to_train(demo, monkeypatch, capsys):
    # The demo's own default layout: DIR/demo_out/runs, and the dry run from DIR.
    assert demo["out"].name == "demo_out"
    monkeypatch.chdir(demo["out"].parent)
    capsys.readouterr()
    assert main(["sweep", "demo", "--dry-run", *TINY_OVERRIDES, *TINY_RUNS]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("3 runs, 0 to train"), last
    assert last.endswith(f"sweep directory {demo['result'].sweep_dir.resolve()}"), last

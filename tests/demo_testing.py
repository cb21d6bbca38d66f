"""One tiny demo study per test run, shared by the demo and notebook tests.

The demo pipeline (:func:`scaling.app.demo.run_demo`) runs once on a shrunken version of the
demo experiment, given as Hydra overrides of the preset as `python -m sweeps -m
experiment=demo` takes them: 3 model sizes, each at its own budget
(``sweep.tokens_by_model``), one WSD run each with 2 cooldown branches (3 token budgets
per size), 16 to 48 steps of 1,024 tokens on a 1 MB slice of the built-in corpus, two
runs at a time. Its sweep directory is then the parameter of every notebook. The session fixture ``demo``
(``conftest.py``) hands it to the tests.
"""
from __future__ import annotations

import time
from pathlib import Path

#: The demo's runs, shrunk: 3 sizes, the smaller ones longer, as in the preset.
TINY_GRID = (("nano", 49152), ("micro", 32768), ("tiny", 16384))
TINY_RUNS = ["model=nano,micro,tiny"] + [f"sweep.tokens_by_model.{m}={t}" for m, t in TINY_GRID]
#: The demo experiment, shrunk: 2 cooldown branches per run, so 9 (N, D, loss) points.
TINY_OVERRIDES = ["sweep.branch_fracs=[0.25,0.5]", "seq_len=64", "batch_tokens=1024",
                  "data.max_bytes=1000000", "data.val_frac=0.1", "data.val_tokens=4096", "eval_count=8"]
BOOTSTRAP = 20

_made: dict = {}


def tiny_demo(tmp_path_factory) -> dict:
    """Run the tiny demo once per test run; later calls return the same record:
    ``out`` (its directory), ``result`` (the DemoResult), ``lines`` (everything it
    printed), ``seconds``, ``env`` and ``cache``."""
    if "out" not in _made:
        cache = tmp_path_factory.mktemp("token_cache")
        out = tmp_path_factory.mktemp("demo") / "demo_out"
        env = {"SCALING_CACHE": str(cache)}
        lines: list[str] = []
        from scaling.app.demo import run_demo

        t0 = time.perf_counter()
        result = run_demo(out, overrides=TINY_OVERRIDES + TINY_RUNS, lanes=2, bootstrap=BOOTSTRAP,
                          n_jobs=2, env=env, echo=lines.append)
        _made.update(out=Path(out), result=result, lines=lines, seconds=time.perf_counter() - t0, env=env,
                     cache=cache)
    return _made

"""analysis: scaling-law fits, extrapolation and reports on run records or plain tables.

numpy / scipy / pandas / lmfit only: never imports torch, triton, hydra or ``scaling``,
so laws can be fitted on a laptop in a second.

The rooms, in the order the data flows through them (docs/architecture.md):

* ``analysis.common``: errors, text, run records, schedules (all that ``scaling`` imports);
* ``analysis.data``: points tables from run records or files, the built-in public ladders,
  published laws and models, seeded synthetic ladders;
* ``analysis.laws``: one :class:`Law` object per law, and the registry that names them;
* ``analysis.fitting``: :func:`fit_law` and the :class:`LawFit` it returns, bootstrap,
  standard errors, Approaches 1-2, loss-curve fits;
* ``analysis.selection``: the law choice (:func:`choose_law`), backtests, self-checks;
* ``analysis.extrapolation``: the compute-matched answers (:func:`extrapolate`,
  :func:`run_study`) and their backtest on measured runs;
* ``analysis.reporting``: figures and the report (:func:`build_report`).

The names below are the curated API. They load on first use (PEP 562), because the
trainer imports ``analysis.common`` and must not pay for scipy and matplotlib.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: name -> module that defines it
_API = {
    "load_points": "analysis.data.loading",
    "Law": "analysis.laws",
    "register_law": "analysis.laws",
    "get_law": "analysis.laws",
    "fit_law": "analysis.fitting.fit",
    "LawFit": "analysis.fitting.result",
    "load_result": "analysis.fitting.io",
    "choose_law": "analysis.selection.policy",
    "fit_checked": "analysis.selection.checked",
    "extrapolate": "analysis.extrapolation.extrapolate",
    "run_study": "analysis.extrapolation.study",
    "build_report": "analysis.reporting.report",
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))

"""analysis/__init__.py: the curated API resolves, and importing the small rooms the trainer
uses (analysis.common) stays cheap: no scipy, matplotlib or lmfit behind it."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import analysis


def test_every_curated_name_resolves_to_the_object_its_room_defines():
    import importlib

    for name, module in analysis._API.items():
        assert getattr(analysis, name) is getattr(importlib.import_module(module), name), name
    assert set(analysis.__all__) == {"__version__", *analysis._API}
    with pytest.raises(AttributeError):
        analysis.not_a_name  # noqa: B018


def test_the_trainer_side_import_pulls_in_no_scientific_stack():
    code = ("import sys, analysis.common.errors, analysis.common.records, analysis.common.text; "
            "print(sorted(m for m in ('scipy', 'matplotlib', 'lmfit', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_api_fits_and_extrapolates_a_known_law():
    # Chinchilla-like truth on a 4 x 4 grid: the top-level names do the whole job
    true = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}
    rows = [{"params": n, "tokens": d, "loss": analysis.get_law("chinchilla").fn(n, d, **true)}
            for n in (1e7, 3e7, 1e8, 3e8) for d in (2e8, 6e8, 2e9, 6e9)]
    points = analysis.load_points(pd.DataFrame(rows))
    fit = analysis.fit_law(points, "chinchilla", progress=False)
    assert isinstance(fit, analysis.LawFit) and fit.law_obj is analysis.get_law("chinchilla")
    for k, v in true.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k
    res = analysis.extrapolate(fit, [1e8], target=(3e8, 6e9))
    assert np.isfinite(res.models[0].tokens_to_match)

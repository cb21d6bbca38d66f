"""The worked example of docs/analysis.md: a law the library does not ship, added from this
module alone, then fitted, extrapolated and plotted with no change to library code.

The law is Kaplan et al. 2020's joint law with an irreducible loss added, the form
Henighan et al. 2020 ("Scaling Laws for Autoregressive Generative Modeling", eq. 1.1-1.2)
use:  L(N, D) = E + [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D.
"""
from itertools import product

import numpy as np
import pandas as pd
import pytest

from analysis.common.errors import InputError
from analysis.extrapolation.extrapolate import ModelSpec, extrapolate, models_from_points
from analysis.fitting.fit import fit_law
from analysis.laws import LAWS, Law, get_law, register_law
from analysis.reporting.plots import plot_curves
from analysis.fitting.result import LawFit

TRUE = {"E": 1.7, "N_c": 3e8, "D_c": 2e9, "alpha_N": 0.34, "alpha_D": 0.28}


# --- docs/analysis.md example begins
def henighan2020(N, D, E, N_c, D_c, alpha_N, alpha_D):
    """Kaplan et al. 2020 eq. (1.5) plus an irreducible loss E (Henighan et al. 2020)."""
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    return E + ((N_c / N) ** (alpha_N / alpha_D) + D_c / D) ** alpha_D


class Henighan(Law):
    def floor(self, params, N):
        """E + (N_c / N)^alpha_N: the law as D -> infinity."""
        return np.asarray(params["E"] + (params["N_c"] / np.asarray(N, float)) ** np.asarray(params["alpha_N"]))


HENIGHAN = Henighan(
    "henighan2020", henighan2020, ("E", "N_c", "D_c", "alpha_N", "alpha_D"), ("N", "D"),
    bounds={"E": (0.0, 10.0), "N_c": (0.0, np.inf), "D_c": (0.0, np.inf), "alpha_N": (0.0, 2.0),
            "alpha_D": (0.0, 2.0)},
    citation="Henighan et al. 2020, Scaling Laws for Autoregressive Generative Modeling, eq. (1.1)",
    formula="L(N, D) = E + [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
    # rows of (E, N_c, D_c, alpha_N, alpha_D); the fitter works in log N_c and log D_c itself
    start_grid=list(product((0.5, 1.5), (1e7, 1e9, 1e11), (1e8, 1e10, 1e12), (0.1, 0.3, 0.6), (0.1, 0.3, 0.6))),
    size_terms=("E", "N_c", "alpha_N"),
)
# --- docs/analysis.md example ends


@pytest.fixture
def registered():
    register_law(HENIGHAN)
    yield HENIGHAN
    LAWS.pop(HENIGHAN.name, None)


def ladder(seed=0, noise=0.002):
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(2e6, 2e8, 6)
    N = np.repeat(sizes, 6)
    D = N * np.tile([2.0, 5.0, 10.0, 20.0, 50.0, 100.0], len(sizes))
    L = henighan2020(N, D, **TRUE) * np.exp(rng.normal(0, noise, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": L})


def test_a_new_law_is_fitted_extrapolated_and_plotted_without_library_changes(registered):
    pts = ladder()
    fit = fit_law(pts, "henighan2020", progress=False)
    assert fit.law == "henighan2020" and fit.law_obj is HENIGHAN
    assert "a 162-point grid" in fit.method
    assert fit.meta["theta_names"] == ["E", "log_N_c", "log_D_c", "alpha_N", "alpha_D"]
    # Ground truth: predictions on the data and 10x beyond the largest model, from the
    # generating parameters (the individual constants trade off against each other).
    far_n, far_d = 2e9, 4e10
    truth = float(henighan2020(far_n, far_d, **TRUE))
    assert float(fit.predict(N=far_n, D=far_d)) == pytest.approx(truth, rel=0.01)
    resid = fit.predict(N=pts["params"], D=pts["tokens"]) / pts["loss"] - 1
    assert float(np.sqrt(np.mean(resid ** 2))) < 0.004
    # The law's own floor and the generic numerical inversion agree with a direct solve.
    res = extrapolate(fit, models_from_points(pts), target=ModelSpec(far_n, far_d))
    for m in res.models:
        assert m.floor == pytest.approx(float(HENIGHAN.floor(fit.params, m.params)), rel=1e-12)
        if m.tokens_to_match is not None:
            assert float(fit.predict(N=m.params, D=m.tokens_to_match)) == pytest.approx(res.target.loss, rel=1e-9)
    assert "henighan2020" in res.table()
    fig = plot_curves(pts, fit=fit, result=res)
    assert fig.axes[0].get_lines(), "the law's curves are drawn"
    # a saved fit reloads as the same law while it is registered
    assert LawFit.from_dict(fit.to_dict()).law_obj is HENIGHAN


def test_bootstrap_and_allocation_work_for_the_new_law(registered):
    from analysis.fitting.allocation import compute_optimal

    fit = fit_law(ladder(1), "henighan2020", bootstrap=8, n_jobs=1, progress=False)
    assert fit.samples.shape == (8, 5)
    out = compute_optimal(fit, [1e18])
    n, d = float(out["n_opt"][0]), float(out["d_opt"][0])
    assert 6 * n * d == pytest.approx(1e18, rel=1e-9)
    # the numerical optimum is a minimum of L(N, C / 6N)
    for f in (0.9, 1.1):
        assert float(fit.predict(N=n * f, D=1e18 / (6 * n * f))) > float(fit.predict(N=n, D=d))


def test_registration_is_checked():
    with pytest.raises(InputError, match="already registered"):
        register_law(Law("chinchilla", henighan2020, tuple(TRUE), ("N", "D")))
    with pytest.raises(InputError, match="unknown law"):
        get_law("henighan2020")


def test_a_law_module_named_in_the_environment_is_usable_from_the_command_line(tmp_path, monkeypatch, capsys):
    # one file that registers the law, named in SCALING_LAW_MODULES: `scaling fit --law` takes it
    import json
    from pathlib import Path

    from scaling.app.cli import main

    module = tmp_path / "my_laws.py"
    module.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                      "from test_law_plugin import HENIGHAN\n"
                      "from analysis.laws import register_law\n"
                      "register_law(HENIGHAN, replace=True)\n")
    ladder().to_csv(tmp_path / "points.csv", index=False)
    monkeypatch.setenv("SCALING_LAW_MODULES", str(module))
    try:
        assert main(["fit", str(tmp_path / "points.csv"), "--law", "henighan2020", "--quiet", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["law"]["name"] == "henighan2020"
        assert out["law"]["params"]["alpha_N"] == pytest.approx(TRUE["alpha_N"], rel=0.1)
    finally:
        LAWS.pop("henighan2020", None)
    # without the module the name is a usage error listing what --law takes
    monkeypatch.delenv("SCALING_LAW_MODULES")
    with pytest.raises(SystemExit) as e:
        main(["fit", str(tmp_path / "points.csv"), "--law", "henighan2020"])
    assert e.value.code == 2 and "invalid choice: 'henighan2020'" in capsys.readouterr().err
    # a module that does not exist, or fails, is one line naming the variable
    monkeypatch.setenv("SCALING_LAW_MODULES", str(tmp_path / "nope.py"))
    assert main(["fit", str(tmp_path / "points.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("scaling: error: SCALING_LAW_MODULES:")
    (tmp_path / "broken.py").write_text("raise ValueError('no such law here')\n")
    monkeypatch.setenv("SCALING_LAW_MODULES", str(tmp_path / "broken.py"))
    assert main(["fit", str(tmp_path / "points.csv")]) == 2
    assert "ValueError: no such law here" in capsys.readouterr().err

"""The notebooks: committed without outputs, defining nothing of their own, parameterised by
a papermill-style first cell, and executing without a cell error against a small sweep
trained once per test run (the same one the demo test uses)."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from demo_testing import BOOTSTRAP, tiny_demo

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("01_loss_vs_tokens.ipynb", "02_fit_scaling_laws.ipynb", "03_undertraining.ipynb")
#: Where a notebook may import from: the toolkit itself, and IPython's display.
IMPORT_ROOTS = {"analysis", "scaling", "sweeps", "IPython"}


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return tiny_demo(tmp_path_factory)


def _read(name: str):
    return nbformat.read(NOTEBOOK_DIR / name, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _python(source: str) -> str:
    """Cell source without IPython magics (``%matplotlib inline``), which are not Python."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def test_the_three_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    for cell in _code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs before committing"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_code_cell_is_the_parameters_cell(name):
    first = _code_cells(_read(name))[0]
    assert "parameters" in first.metadata.get("tags", [])
    tree = ast.parse(first.source)
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert "sweep_dir" in assigned
    assert all(isinstance(node, ast.Assign) for node in tree.body), "the parameters cell only assigns values"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_define_nothing_and_import_only_the_library(name):
    for cell in _code_cells(_read(name)):
        tree = ast.parse(_python(cell.source))
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), (
                f"{name}: notebooks define no functions or classes; put them in the library:\n{cell.source}")
            if isinstance(node, ast.Import):
                assert {a.name.split(".")[0] for a in node.names} <= IMPORT_ROOTS, cell.source
            if isinstance(node, ast.ImportFrom):
                assert node.module.split(".")[0] in IMPORT_ROOTS, cell.source


def _execute(name: str, sweep_dir: Path):
    """Run a notebook with its parameters cell replaced, as papermill would inject them."""
    from nbclient import NotebookClient

    nb = _read(name)
    params = _code_cells(nb)[0]
    kept = [line for line in params.source.splitlines() if not line.startswith(("sweep_dir", "bootstrap"))]
    params.source = "\n".join([f"sweep_dir = {str(sweep_dir)!r}", f"bootstrap = {BOOTSTRAP}"] + kept)
    # Any cell error raises CellExecutionError with the cell and its traceback.
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    return nb


def _text(nb) -> str:
    out = []
    for cell in _code_cells(nb):
        for o in cell.outputs:
            if o.output_type == "stream":
                out.append(o.text)
            elif "data" in o and "text/plain" in o.data:
                out.append(o.data["text/plain"])
    return "\n".join(out)


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for cell in _code_cells(nb) for o in cell.outputs)


def _chinchilla(demo):
    """The notebooks' Chinchilla study of the demo's sweep (the demo itself fits --law auto)."""
    if "chinchilla" not in demo:
        from analysis.study import run_study

        demo["chinchilla"] = run_study(demo["result"].sweep_dir, law="chinchilla", bootstrap=BOOTSTRAP, seed=0,
                                       n_jobs=2, curves=True)
    return demo["chinchilla"]


def test_01_loss_vs_tokens_runs_on_the_sweep(demo):
    from analysis.data import load_points

    sweep = demo["result"].sweep_dir
    nb = _execute("01_loss_vs_tokens.ipynb", sweep)
    pts = load_points(sweep)
    assert f"{len(pts)} points from {pts['run'].nunique()} runs: {pts['params'].nunique()} model sizes" in _text(nb)
    assert _images(nb) == 2  # loss vs tokens, loss vs compute with the frontier


def test_02_fit_scaling_laws_runs_on_the_sweep(demo):
    from analysis.overview import METHODS

    nb = _execute("02_fit_scaling_laws.ipynb", demo["result"].sweep_dir)
    text = _text(nb)
    for name in METHODS:
        assert f"== {name}: " in text
    # The Approach 3 fit in the notebook is the library's (same points, seed and refits).
    assert _chinchilla(demo).fit.report() in text
    assert _images(nb) >= 2  # residuals of the fitted laws and the IsoFLOP profiles


def test_03_undertraining_runs_on_the_sweep(demo):
    nb = _execute("03_undertraining.ipynb", demo["result"].sweep_dir)
    text = _text(nb)
    # The notebook's table is the library's answer for this sweep, with the same bootstrap.
    assert _chinchilla(demo).result.table() in text
    assert "LLaMA-7B" in text and "Law: besiroglu2024" in text
    # joint-law curves, own curves, one figure per published law, and what repetition costs
    assert _images(nb) == 5
    # the LLaMA case under the 1.4T-token data limit, answered by the data-constrained law
    assert "Law: muennighoff2023 (data_constrained)" in text and "epochs to match" in text

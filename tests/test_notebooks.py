"""The notebooks: committed without outputs, defining nothing of their own, parameterised by
a papermill first cell, and executed through papermill without a cell error against a
small sweep trained once per test run (the same one the demo test uses)."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from demo_testing import BOOTSTRAP

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("01_loss_vs_tokens.ipynb", "02_fit_scaling_laws.ipynb", "03_undertraining.ipynb")
#: Where a notebook may import from: the toolkit itself, and IPython's display.
IMPORT_ROOTS = {"analysis", "scaling", "sweeps", "IPython"}


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


def _quiet_kernel_manager():
    """jupyter_client's kernel manager without the SIGINT it sends before every shutdown
    request. papermill shuts the kernel down as soon as the reply to its last
    ``kernel_info`` request arrives, while the kernel may still be inside that request's
    handler, where SIGINT raises KeyboardInterrupt: the kernel then logs
    ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` for a notebook that ran
    clean. Every cell has finished by then, so the interrupt has nothing to stop; the
    shutdown request (and SIGTERM, then SIGKILL, after ``shutdown_wait_time``) still ends
    the kernel."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self):
            if getattr(self, "shutting_down", False):
                return
            await super()._async_interrupt_kernel()

    return QuietShutdownKernelManager


def _papermill(src: Path, dest: Path, parameters: dict, cwd: Path, quiet: bool = True) -> None:
    import papermill as pm

    # Any cell error raises PapermillExecutionError with the cell and its traceback.
    pm.execute_notebook(str(src), str(dest), parameters=parameters, kernel_name="python3", cwd=str(cwd),
                        execution_timeout=300, progress_bar=False, log_output=False,
                        **({"kernel_manager_class": _quiet_kernel_manager()} if quiet else {}))


def _execute(name: str, sweep_dir: Path, tmp_path: Path):
    """Run a notebook through papermill, as CI and a user would: the sweep directory (and
    the bootstrap size, where the notebook has one) injected after its parameters cell."""
    import papermill as pm

    declared = pm.inspect_notebook(str(NOTEBOOK_DIR / name))
    params = {"sweep_dir": str(sweep_dir), "bootstrap": BOOTSTRAP}
    _papermill(NOTEBOOK_DIR / name, tmp_path / name, {k: v for k, v in params.items() if k in declared},
               NOTEBOOK_DIR)
    nb = nbformat.read(tmp_path / name, as_version=4)
    injected = [c for c in _code_cells(nb) if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f"sweep_dir = \"{sweep_dir}\"" in injected[0].source
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
        from analysis.extrapolation.study import run_study

        demo["chinchilla"] = run_study(demo["result"].sweep_dir, law="chinchilla", bootstrap=BOOTSTRAP, seed=0,
                                       n_jobs=2, curves=True)
    return demo["chinchilla"]


def test_01_loss_vs_tokens_runs_on_the_sweep(demo, tmp_path):
    from analysis.data.loading import load_points

    sweep = demo["result"].sweep_dir
    nb = _execute("01_loss_vs_tokens.ipynb", sweep, tmp_path)
    pts = load_points(sweep)
    assert f"{len(pts)} points from {pts['run'].nunique()} runs: {pts['params'].nunique()} model sizes" in _text(nb)
    assert _images(nb) == 2  # loss vs tokens, loss vs compute with the frontier
    # every logged row of the sweep in one frame, summarised per model
    from analysis.common.records import load_metrics

    metrics = load_metrics(sweep)
    assert "last_train_loss" in _text(nb) and len(metrics) == sum(
        1 for d in metrics["run_dir"].unique() for line in open(Path(d) / "metrics.jsonl") if line.strip())


def test_02_fit_scaling_laws_runs_on_the_sweep(demo, tmp_path):
    import papermill as pm

    from analysis.reporting.overview import METHODS, fit_methods

    nb = _execute("02_fit_scaling_laws.ipynb", demo["result"].sweep_dir, tmp_path)
    text = _text(nb)
    for name in METHODS:
        assert f"== {name}: " in text
    # The Approach 3 fit in the notebook is the library's (same points, seed and refits).
    assert _chinchilla(demo).fit.report() in text
    assert _images(nb) >= 2  # residuals of the fitted laws and the IsoFLOP profiles
    # Approaches 1 and 2 are fitted on the built-in IsoFLOP ladder, and agree with the
    # authors' published exponent a = 0.497 (Porian et al. 2024, 95% CI 0.491-0.505).
    public = pm.inspect_notebook(str(NOTEBOOK_DIR / "02_fit_scaling_laws.ipynb"))["public"]["default"].strip("\"'")
    fits = fit_methods(public, bootstrap=BOOTSTRAP, methods=("approach1", "approach2"))
    for name, fit in fits.items():
        assert not isinstance(fit, str), fit
        assert f"== {name} on {public}: " in text and fit.report() in text
        assert abs(fit.params["a"] - 0.497) < 0.03


def test_03_undertraining_runs_on_the_sweep(demo, tmp_path):
    nb = _execute("03_undertraining.ipynb", demo["result"].sweep_dir, tmp_path)
    text = _text(nb)
    # The notebook's table is the library's answer for this sweep, with the same bootstrap.
    assert _chinchilla(demo).result.table() in text
    assert "LLaMA-7B" in text and "Law: besiroglu2024" in text
    # joint-law curves, own curves, one figure per published law, and what repetition costs
    assert _images(nb) == 5
    # the LLaMA case under the 1.4T-token data limit, answered by the data-constrained law
    assert "Law: muennighoff2023 (data_constrained)" in text and "epochs to match" in text


def test_make_install_installs_the_notebooks_extra():
    """The README's `jupyter lab` and `papermill` commands need the extra in `.venv`; CI
    (.ci/run -> make test -> make install) runs the notebooks through papermill."""
    import re

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
        import tomli as tomllib

    root = NOTEBOOK_DIR.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=;\[ ]", r)[0] for r in extras["notebooks"]}
    assert {"jupyterlab", "papermill"} <= names
    makefile = (root / "Makefile").read_text()
    # make install takes the hash-pinned lock, compiled with these extras (make lock)
    extras_line = re.search(r"^EXTRAS\s*:=\s*(.*)$", makefile, re.M)
    assert extras_line and {"dev", "notebooks"} <= set(extras_line.group(1).split())
    assert "--require-hashes -r $(LOCK)" in makefile and "$(addprefix --extra ,$(EXTRAS))" in makefile
    lock = (root / ".ci" / "requirements.lock").read_text()
    for name in ("jupyterlab", "papermill", "pytest", "torch"):
        assert re.search(rf"^{name}==\S+ \\\n\s+--hash=sha256:[0-9a-f]{{64}}", lock, re.M), name


#: A notebook whose kernel lingers in its handler of papermill's closing ``kernel_info``
#: request, so papermill's shutdown always lands there (by chance it does on a busy machine).
_LINGERING = """\
import time
kernel = get_ipython().kernel
answer = kernel.shell_handlers["kernel_info_request"]
async def linger(*args):
    await answer(*args)
    time.sleep(1.0)
kernel.shell_handlers["kernel_info_request"] = linger
"""


def test_papermill_shutdown_prints_no_keyboardinterrupt(tmp_path, capfd):
    # The kernel writes its log to the stderr it inherits: the captured file descriptor.
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(_LINGERING)]
    nbformat.write(nb, tmp_path / "linger.ipynb")
    _papermill(tmp_path / "linger.ipynb", tmp_path / "plain.ipynb", {}, tmp_path, quiet=False)
    assert "KeyboardInterrupt" in capfd.readouterr().err  # the race, made certain: the line appears
    _papermill(tmp_path / "linger.ipynb", tmp_path / "quiet.ipynb", {}, tmp_path)
    assert "KeyboardInterrupt" not in capfd.readouterr().err

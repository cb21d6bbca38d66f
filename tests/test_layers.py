"""The import contracts of docs/architecture.md: they hold on this tree, and each one breaks
when its rule is broken (checked on a copy of the packages with one import added)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "scaling", "sweeps")
# Beside this interpreter in a virtual environment; no skip when missing: CI must run it.
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
if not LINT_IMPORTS.exists():
    LINT_IMPORTS = Path(shutil.which("lint-imports") or LINT_IMPORTS)


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.exists(), "lint-imports not found (fix: pip install -e '.[dev]')"
    # lint-imports puts its working directory first on sys.path, so it reads the packages
    # in `cwd`, not the installed ones.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from lint-imports' summary lines."""
    names = {c["name"]: cid for cid, c in _contracts().items()}
    flat = " ".join(output.split())  # the report wraps long names
    return {cid: ("KEPT" if f"{name} KEPT" in flat else "BROKEN" if f"{name} BROKEN" in flat else "?")
            for name, cid in names.items()}


def test_the_contracts_hold_on_this_tree():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(_verdicts(r.stdout).values()) == {"KEPT"}, r.stdout


def test_no_contract_lists_exceptions():
    for cid, c in _contracts().items():
        assert "ignore_imports" not in c, f"contract {cid} lists exceptions"


def test_the_core_contract_names_the_core_layer_and_the_root_layer():
    # The exhaustive layers contract makes every new module under scaling/ pick a layer;
    # this makes the forbidden contracts follow that choice.
    c = _contracts()
    root_layer, core_layer = ([m.strip() for m in layer.split(":")] for layer in c["scaling-modules"]["layers"])
    assert sorted(c["core"]["source_modules"]) == sorted(f"scaling.{m}" for m in core_layer)
    root = sorted(f"scaling.{m}" for m in root_layer)
    assert sorted(set(c["core"]["forbidden_modules"]) - {"sweeps"}) == root
    assert sorted(c["sweeps"]["forbidden_modules"]) == root
    assert "sweeps" in c["core"]["forbidden_modules"]
    assert set(c["analysis"]["forbidden_modules"]) == {"torch", "triton", "hydra", "omegaconf", "scaling", "sweeps"}
    # The core and sweeps may take only analysis.common: everything else of analysis is forbidden.
    assert sorted(c["core-analysis"]["source_modules"]) == sorted(c["core"]["source_modules"] + ["sweeps"])
    # (and the benchmarks' timing rounds, which sit in analysis.common for the benches)
    assert sorted(c["core-analysis"]["forbidden_modules"]) == sorted(
        (_analysis_layers() - {"analysis.common"}) | {"analysis.common.rounds"})


def _analysis_layers() -> set[str]:
    """The modules named in the layers of the "analysis-layers" contract."""
    layers = _contracts()["analysis-layers"]["layers"]
    return {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}


def _modules(package: str) -> list[str]:
    """Every module and package under ``package``'s folder, by name."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_analysis_module_is_in_a_layer():
    # The layers contract cannot be exhaustive (data/ straddles two layers), so this is.
    layers = _analysis_layers()
    # The packages that hold layers without being one: analysis (the version and the lazy API) and analysis.data.
    holders = {m.rpartition(".")[0] for m in layers}
    unplaced = [m for m in _modules("analysis")
                if m not in holders and not any(m == l or m.startswith(l + ".") for l in layers)]
    assert not unplaced, ("modules under analysis/ in no layer of the analysis-layers contract "
                          f"(place them in pyproject.toml): {unplaced}")
    missing = sorted(l for l in layers if l not in _modules("analysis"))
    assert not missing, f"the analysis-layers contract names modules that do not exist: {missing}"


@pytest.fixture
def tree(tmp_path):
    """A copy of the three packages and pyproject.toml, to break on purpose."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = tree / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize("module, line, broken, shown", [
    ("analysis.laws", "import torch", {"analysis"}, "analysis.laws -> torch"),
    ("analysis.common.text", "from omegaconf import OmegaConf", {"analysis"}, "analysis.common.text -> omegaconf"),
    ("analysis.common.records", "from scaling import flops", {"analysis"}, "analysis.common.records -> scaling.flops"),
    ("analysis.fitting.fit", "import sweeps.index", {"analysis"}, "analysis.fitting.fit -> sweeps.index"),
    ("scaling.flops", "import sweeps", {"core"}, "scaling.flops -> sweeps"),
    ("scaling.train.trainer", "from sweeps.job import task", {"core"}, "scaling.train.trainer -> sweeps.job"),
    # sweeps trains through the core, so it would reach the CLI through it as well.
    # The CLI and the demo read the whole analysis, so reaching them breaks core-analysis as well.
    ("scaling.kernels.rope", "from scaling.app.cli import main", {"core", "scaling-modules", "sweeps", "core-analysis"},
     "scaling.kernels.rope -> scaling.app.cli"),
    ("scaling.config", "from scaling.app.demo import run_demo", {"core", "scaling-modules", "sweeps", "core-analysis"},
     "scaling.config -> scaling.app.demo"),
    ("sweeps.naming", "from scaling.app.cli._common import print_json", {"sweeps", "core-analysis"},
     "sweeps.naming -> scaling.app.cli._common"),
    ("sweeps.job", "import scaling.app.soak", {"sweeps"}, "sweeps.job -> scaling.app.soak"),
    # the layers of analysis: nothing imports a layer above its own
    ("analysis.laws.base", "from analysis.fitting import fit", {"analysis-layers"},
     "analysis.laws.base -> analysis.fitting.fit"),
    ("analysis.data.points", "from analysis.laws import get_law", {"analysis-layers"},
     "analysis.data.points -> analysis.laws"),
    ("analysis.fitting.result", "from analysis.data.published import PUBLISHED_LAWS", {"analysis-layers"},
     "analysis.fitting.result -> analysis.data.published"),
    ("analysis.selection.checks", "from analysis.extrapolation import study", {"analysis-layers"},
     "analysis.selection.checks -> analysis.extrapolation.study"),
    ("analysis.extrapolation.specs", "from analysis.reporting import overview", {"analysis-layers"},
     "analysis.extrapolation.specs -> analysis.reporting.overview"),
    # analysis.common is below everything, and the core reaches whatever it imports
    ("analysis.common.records", "from analysis.data import points", {"analysis-layers", "core-analysis"},
     "analysis.common.records -> analysis.data.points"),
    # the core and sweeps import only analysis.common
    ("scaling.model", "from analysis.laws import get_law", {"core-analysis"}, "scaling.model -> analysis.laws"),
    ("sweeps.estimate", "from analysis.data.loading import load_points", {"core-analysis"},
     "sweeps.estimate -> analysis.data.loading"),
    ("scaling.train.trainer", "from analysis.common.rounds import median", {"core-analysis"}, "scaling.train.trainer -> analysis.common.rounds"),
    # the optional logging libraries: only scaling.loggers, inside its classes
    ("scaling.train.trainer", "import wandb", {"loggers"}, "scaling.train.trainer -> wandb"),
    ("sweeps.job", "from tensorboard.backend import event_processing", {"loggers"}, "sweeps.job -> tensorboard"),
])
def test_a_forbidden_import_breaks_its_contract(tree, module, line, broken, shown):
    _add_import(tree, module, line)
    r = _lint(tree)
    assert r.returncode == 1, r.stdout + r.stderr
    verdicts = _verdicts(r.stdout)
    assert {cid for cid, v in verdicts.items() if v == "BROKEN"} == broken, r.stdout
    assert {cid for cid, v in verdicts.items() if v == "KEPT"} == set(verdicts) - broken, r.stdout
    assert shown in r.stdout


def test_an_indirect_import_breaks_the_contract_too(tree):
    # analysis.common.text -> analysis.newhelper -> torch: the chain is reported, not only direct imports.
    (tree / "analysis" / "newhelper.py").write_text("import torch\n")
    _add_import(tree, "analysis.common.text", "from analysis import newhelper")
    r = _lint(tree)
    assert r.returncode == 1 and _verdicts(r.stdout)["analysis"] == "BROKEN", r.stdout
    assert "analysis.newhelper -> torch" in r.stdout


def test_a_new_scaling_module_must_be_placed_in_a_layer(tree):
    (tree / "scaling" / "schedule.py").write_text('"""A module nobody has classified yet."""\n')
    r = _lint(tree)
    assert r.returncode == 1, r.stdout + r.stderr
    assert {cid for cid, v in _verdicts(r.stdout).items() if v == "BROKEN"} == {"scaling-modules"}
    assert "scaling.schedule" in r.stdout and "not listed as layers" in r.stdout

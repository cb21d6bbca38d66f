"""docs/architecture.md against the tree: its file tables name every module, and imports of
the toolkit's own modules sit where the page says.

**The file tables.** Each folder has a heading whose text starts with the folder in
backticks (``### `analysis/fitting/` ``) and a Markdown table below it. The first cell of
a row names one file or folder in backticks, relative to the heading's folder; one row
per module, so a cell naming two modules fails. Every ``.py`` file under
:data:`FOLDERS` must have its row, except an ``__init__.py`` that holds nothing but a
docstring (its folder's heading stands for it); every entry must exist.

**Function-level imports.** An import statement inside a function (or method) of a
module of analysis, scaling or sweeps is *deferred*. ``analysis/`` defers none: its
modules import each other at the top. In ``scaling/`` and ``sweeps/`` they stand only in
the composition root, in sweeps and in ``scaling/kernels/__init__.py`` (the places that
defer heavy imports for start-up time, or to keep triton optional), and a module that
has them says why in a module-level comment or docstring containing "deferred".
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
FOLDERS = ("analysis", "scaling", "sweeps", "docs/studies")
OWN = ("analysis", "scaling", "sweeps")

# Where a module of scaling/ or sweeps/ may defer an import of the toolkit's own modules:
# the composition root (start-up time of `scaling --help` and the tools), sweeps (torch
# kept out of the Hydra processes that only plan, name and index runs) and the kernels'
# package (triton stays optional).
MAY_DEFER = ("scaling.app.cli", "scaling.app.bench", "scaling.app.demo", "scaling.app.soak", "scaling.__main__", "sweeps")
MAY_DEFER_EXACTLY = ("scaling.kernels",)
MARKER = re.compile(r"\bdeferred\b", re.IGNORECASE)


# -- the file tables -------------------------------------------------------------------

_HEADING = re.compile(r"^#{2,6}\s+`(?P<folder>[^`]+/)`")
_ROW = re.compile(r"^\|(?P<first>[^|]*)\|")
_NAME = re.compile(r"`([^`]+)`")


def table_entries(text: str) -> list[tuple[int, str, list[str]]]:
    """(line number, folder, names in the first cell) of each table row under a folder heading."""
    rows = []
    folder = None
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            m = _HEADING.match(line)
            folder = m["folder"] if m else None
            continue
        m = _ROW.match(line)
        if folder is None or not m:
            continue
        first = m["first"].strip()
        if not first or set(first) <= set("-: ") or first == "file":  # header and rule rows
            continue
        rows.append((n, folder, _NAME.findall(first)))
    return rows


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all((isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
               or (isinstance(s, ast.ImportFrom) and s.module == "__future__") for s in body)


def modules_needing_a_row(root: Path = ROOT) -> set[str]:
    """Every .py file under FOLDERS (relative paths), less docstring-only ``__init__.py``."""
    found = set()
    for folder in FOLDERS:
        for path in (root / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            if path.name == "__init__.py" and _docstring_only(path):
                continue
            found.add(path.relative_to(root).as_posix())
    return found


def table_problems(text: str, root: Path = ROOT) -> list[str]:
    """What is wrong with the file tables of ``text`` against the tree at ``root``."""
    problems = []
    listed: dict[str, int] = {}
    for n, folder, names in table_entries(text):
        if not names:
            problems.append(f"line {n}: a row under `{folder}` names no file in backticks")
            continue
        if len(names) > 1:
            problems.append(f"line {n}: one row per module, but this row names {', '.join(names)}")
        for name in names:
            rel = (folder + name).rstrip("/")
            if not (root / rel).exists():
                problems.append(f"line {n}: `{rel}` is in the table but not in the tree")
            elif rel.endswith(".py"):
                if rel in listed:
                    problems.append(f"line {n}: `{rel}` has a row already (line {listed[rel]})")
                listed[rel] = n
    for rel in sorted(modules_needing_a_row(root) - set(listed)):
        problems.append(f"`{rel}` has no row in the file tables of docs/architecture.md")
    return problems


def test_the_file_tables_name_every_module():
    problems = table_problems(DOC.read_text())
    assert not problems, "docs/architecture.md:\n" + "\n".join(problems)


def test_the_table_check_finds_what_it_should(tmp_path):
    pkg = tmp_path / "analysis" / "fitting"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Docstring only: the heading stands for it."""\n')
    (pkg / "fit.py").write_text("x = 1\n")
    (pkg / "new.py").write_text("x = 1\n")
    for folder in FOLDERS[1:]:
        (tmp_path / folder).mkdir(parents=True)
    text = ("# Architecture\n\n### `analysis/fitting/`\n\n| file | holds |\n|---|---|\n"
            "| `fit.py` | the fit |\n| `gone.py` | a module since removed |\n"
            "| `fit.py`, `new.py` | two at once |\n\n### `scaling/`\n\nno table\n")
    assert table_problems(text, tmp_path) == [
        "line 8: `analysis/fitting/gone.py` is in the table but not in the tree",
        "line 9: one row per module, but this row names fit.py, new.py",
        "line 9: `analysis/fitting/fit.py` has a row already (line 7)",
    ]
    text = text.replace("| `gone.py` | a module since removed |\n", "").replace("`fit.py`, `new.py`", "`new.py`")
    assert table_problems(text, tmp_path) == []
    (pkg / "__init__.py").write_text("from .fit import x\n")  # holds code now: it needs a row
    assert table_problems(text, tmp_path) == [
        "`analysis/fitting/__init__.py` has no row in the file tables of docs/architecture.md"]


# -- function-level imports ------------------------------------------------------------

def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def deferred_imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of each import of an analysis, scaling or sweeps module made inside a
    function or method of the file at ``path``."""
    module = _module_name(path, root)
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names)
            elif in_function and isinstance(child, ast.ImportFrom):
                found.append((child.lineno, _absolute(module, path.name == "__init__.py", child)))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return [(line, name) for line, name in found if name.split(".")[0] in OWN]


def says_why(path: Path) -> bool:
    """The module's docstring or a comment at column 0 says "deferred"."""
    text = path.read_text()
    doc = ast.get_docstring(ast.parse(text)) or ""
    comments = [line for line in text.splitlines() if line.startswith("#")]
    return bool(MARKER.search(doc) or any(MARKER.search(c) for c in comments))


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def test_analysis_imports_its_own_modules_at_the_top():
    found = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in _modules("analysis") for line, name in deferred_imports(p)]
    assert not found, ("analysis/ imports its own modules at the top of each module (the graph has no cycle that "
                       "would need otherwise); move these up:\n" + "\n".join(found))


@pytest.mark.parametrize("package", ["scaling", "sweeps"])
def test_deferred_imports_stand_where_start_up_needs_them_and_say_why(package):
    misplaced, silent = [], []
    for path in _modules(package):
        found = deferred_imports(path)
        if not found:
            continue
        name = _module_name(path, ROOT)
        where = ", ".join(f"line {line}: {mod}" for line, mod in found[:3]) + (" ..." if len(found) > 3 else "")
        if not (name in MAY_DEFER_EXACTLY or any(name == p or name.startswith(p + ".") for p in MAY_DEFER)):
            misplaced.append(f"{path.relative_to(ROOT)} ({where})")
        elif not says_why(path):
            silent.append(f"{path.relative_to(ROOT)} ({where})")
    assert not misplaced, ("function-level imports of the toolkit's own modules outside the composition root, "
                           "sweeps and scaling/kernels/__init__.py; import them at the top:\n" + "\n".join(misplaced))
    assert not silent, ("modules that defer imports of the toolkit's own modules without saying why: add a "
                        "module-level comment '# Deferred imports: <what, and the start-up it saves>':\n"
                        + "\n".join(silent))


def test_the_deferred_import_finder(tmp_path):
    pkg = tmp_path / "scaling"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text(
        "import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from scaling import flops\n"
        "def f():\n    import torch\n    from . import fit\n    from ..config import plan\n"
        "class C:\n    def m(self):\n        import sweeps.job, json\n")
    (pkg / "cli" / "fit.py").write_text(
        '"""Fit.\n\nThe analysis modules are deferred into run."""\n'
        "def run():\n    def inner():\n        from .. import config\n    from analysis.fitting import fit\n")
    assert deferred_imports(pkg / "cli" / "__init__.py", tmp_path) == [
        (7, "scaling.cli"), (8, "scaling.config"), (11, "sweeps.job")]
    assert deferred_imports(pkg / "cli" / "fit.py", tmp_path) == [(6, "scaling"), (7, "analysis.fitting")]
    assert says_why(pkg / "cli" / "fit.py") and not says_why(pkg / "cli" / "__init__.py")
    (pkg / "cli" / "__init__.py").write_text("# Deferred imports: none gain anything.\n" +
                                             (pkg / "cli" / "__init__.py").read_text())
    assert says_why(pkg / "cli" / "__init__.py")

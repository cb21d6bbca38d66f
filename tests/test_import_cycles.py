"""No import cycles between the modules of a package (docs/architecture.md).

The rule. An edge A -> B is any import of module B that grimp finds in A's source: at
module level, inside a function, and under ``if TYPE_CHECKING:``. A late import or a
type-only import still ties two modules together (neither can be read, tested or moved
without the other), so hiding a cycle inside a function does not break it. Imports of
modules outside the package are left out.

A package importing its own submodules is an edge like any other, so a package whose
``__init__`` re-exports its submodules is fine as long as none of them imports the
package back, directly or through other modules: ``scaling.config`` re-exports
``scaling.config.plan``, and ``plan`` (and ``scaling.memory``, which ``plan`` imports)
import ``scaling.config.ladder`` and ``scaling.config.schema``, never ``scaling.config``.
Python's implicit loading of a package's ``__init__`` before one of its submodules is not
an edge (grimp records none): otherwise every such re-export would be a cycle.

A cycle is then a strongly connected component of two or more modules of that graph.
To check another package, add its name to ``PACKAGES``.
"""
from __future__ import annotations

import textwrap

import grimp
import pytest

PACKAGES = ["analysis", "scaling", "sweeps"]


def import_cycles(package: str) -> list[list[str]]:
    """The import cycles among ``package``'s modules: each strongly connected component
    (Tarjan's algorithm) of two or more modules of its import graph, sorted."""
    graph = grimp.build_graph(package, cache_dir=None)  # function-level and TYPE_CHECKING imports included
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]  # iterative, so a deep chain cannot hit the recursion limit
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(edges[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def describe(package: str, cycle: list[str]) -> str:
    """The imports inside one cycle, one per line with where they are."""
    graph = grimp.build_graph(package, cache_dir=None)
    members = set(cycle)
    lines = []
    for importer in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            for d in graph.get_import_details(importer=importer, imported=imported):
                lines.append(f"  {importer} -> {imported} (line {d['line_number']}: {d['line_contents']})")
    return "\n".join(lines)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    cycles = import_cycles(package)
    assert not cycles, "import cycles:\n" + "\n".join(
        f"{' <-> '.join(c)}:\n{describe(package, c)}" for c in cycles)


def _package(root, name: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.mark.parametrize("files, cycles", [
    # a late import inside a function is still an edge
    ({"__init__.py": "", "a.py": "from . import b\n",
      "b.py": "def f():\n    from . import a\n"}, [["pkg.a", "pkg.b"]]),
    # so is one made only for type hints
    ({"__init__.py": "", "a.py": "from . import b\n",
      "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n"},
     [["pkg.a", "pkg.b"]]),
    # a package re-exporting its submodules, which import each other but not the package: none
    ({"__init__.py": "from .a import A\nfrom .b import B\n", "a.py": "A = 1\n", "b.py": "from .a import A\nB = A\n"},
     []),
    # a submodule importing the package it belongs to, which imports it: a cycle
    ({"__init__.py": "from .a import A\nfrom .b import B\n", "a.py": "A = 1\n",
      "b.py": "import pkg\nB = 2\n"}, [["pkg", "pkg.b"]]),
    # through a module outside the sub-package: sub/__init__ -> sub.x -> helper -> sub
    ({"__init__.py": "", "sub/__init__.py": "from .x import X\n", "sub/x.py": "from pkg import helper\nX = 1\n",
      "helper.py": "from pkg.sub import X\n"}, [["pkg.helper", "pkg.sub", "pkg.sub.x"]]),
])
def test_the_finder_applies_the_rule(tmp_path, monkeypatch, files, cycles):
    _package(tmp_path, "pkg", files)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("pkg") == cycles

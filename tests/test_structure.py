"""helpers' folders import one way: core ← methods ← judging ← data sets (explain, ground_truth) ←
widgets ← course tools (exercises, classroom).

The import graph is read from the source with ``ast``, counting every import, also those inside a
function: a deferred import hides a circle from Python (it runs), not from a reader or a refactoring.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each floor may import its own floor and the ones below it, never one above. A module that is not
# listed is taken to be a method: it may use the core and other methods, and the core may not use it.
FLOORS = [
    ("core", {"core"}),
    ("methods", {"methods"}),
    ("judging", {"judging"}),
    ("data sets", {"explain", "ground_truth"}),
    ("widgets", {"widgets"}),
    ("course", {"exercises", "classroom"}),
]
DEFAULT_FLOOR = 1


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}``, dotted names relative to the package
    (``"hooks"``, ``"widgets.cam"``, ``"widgets"`` for a subpackage's ``__init__``)."""
    package = package_dir.name
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if name else []
        if not is_package:
            here = here[:-1]  # the package this module sits in
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                    target = base + (node.module.split(".") if node.module else [])
                elif node.module and node.module.split(".")[0] == package:
                    target = node.module.split(".")[1:]
                else:
                    continue
                for alias in node.names:  # `from . import hooks` names a module, `from .hooks import x` a name
                    sub = ".".join(target + [alias.name])
                    imported.add(sub if sub in modules else ".".join(target))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == package:
                        imported.add(".".join(parts[1:]))
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None when the graph is acyclic."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def floor_of(module: str) -> int:
    top = module.split(".")[0]
    return next((i for i, (_, names) in enumerate(FLOORS) if top in names), DEFAULT_FLOOR)


def test_helpers_have_no_import_circle():
    graph = import_graph(ROOT / "helpers")
    graph.pop("", None)  # helpers/__init__ gathers the public names of every module: the top of the house
    assert {"core.hooks", "core.models", "core.images", "methods.cam", "widgets.cam"} <= set(graph)  # the graph is read at all
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " → ".join(cycle)


def test_helpers_import_downwards_only():
    graph = import_graph(ROOT / "helpers")
    graph.pop("", None)
    upward = [f"{a} ({FLOORS[floor_of(a)][0]}) imports {b} ({FLOORS[floor_of(b)][0]})"
              for a, targets in sorted(graph.items()) for b in sorted(targets) if floor_of(b) > floor_of(a)]
    assert not upward, "imports must run core ← methods ← judging ← data sets ← widgets ← course: " + "; ".join(upward)


def test_the_checks_find_a_circle_hidden_in_a_function_and_an_upward_import(tmp_path):
    """The checks above can fail: the circle the helpers had (hooks → models → images → hooks, the last
    import deferred into a function) and a core module importing a method are both caught."""
    package = tmp_path / "pkg"
    (package / "widgets").mkdir(parents=True)
    (package / "__init__.py").write_text("from .hooks import record\n")
    (package / "hooks.py").write_text("from .models import resolve_layer\n")
    (package / "models.py").write_text("from .images import Preprocess\n")
    (package / "images.py").write_text("def top_k():\n    from .hooks import explaining\n")
    (package / "maps.py").write_text("import pkg.cam\n")
    (package / "cam.py").write_text("from . import maps\n")
    (package / "widgets" / "__init__.py").write_text("from .cam import Explorer\n")
    (package / "widgets" / "cam.py").write_text("from ..cam import grad_cam\nfrom ..maps import upsample\n")

    graph = import_graph(package)
    assert graph["images"] == {"hooks"} and graph["maps"] == {"cam"} and graph["cam"] == {"maps"}
    assert graph["widgets"] == {"widgets.cam"} and graph["widgets.cam"] == {"cam", "maps"}
    graph.pop("")
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) in ({"hooks", "models", "images"}, {"maps", "cam"})
    for name in ("maps", "cam"):
        graph.pop(name)
    assert find_cycle(graph) == ["hooks", "models", "images", "hooks"]
    assert (floor_of("core.maps") < floor_of("methods.cam") < floor_of("judging.curves")
            < floor_of("explain.engine") < floor_of("widgets.cam") < floor_of("exercises.cam"))
    assert floor_of("evaluate") == DEFAULT_FLOOR


@pytest.mark.parametrize("name", ["resolve_layer", "explainable_layers", "LayerInfo"])
def test_layer_lookup_keeps_its_old_address(name):
    """resolve_layer and friends moved from helpers.core.models to helpers.core.layers; both paths still work."""
    import helpers
    import helpers.core.layers
    import helpers.core.models

    assert getattr(helpers, name) is getattr(helpers.core.layers, name) is getattr(helpers.core.models, name)


def test_the_suites_schedule_names_files_that_exist():
    """tests/conftest.py orders the files for pytest-xdist and marks the slow ones by path: a renamed file
    would silently lose its place and its mark."""
    from conftest import LONGEST_FIRST, SLOW

    assert not [path for path in [*LONGEST_FIRST, *SLOW] if not (ROOT / path).is_file()]

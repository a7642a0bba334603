"""The package's import graph: no cycle anywhere, and the layers point one way.

Edges are every ``import`` of a ``msseg_ros`` module in a source file, at module level
or inside a function (a deferred import is still a dependency), but not those under
``if TYPE_CHECKING:`` (never executed).
"""
import ast
import graphlib
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "msseg_ros"


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not MODULES[importer].name == "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str) -> set[str]:
    """The msseg_ros modules that module ``name`` imports."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, node)
            for a in node.names:
                sub = f"{module}.{a.name}"
                found.add(sub if sub in MODULES else module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_the_graph_is_read():
    assert len(GRAPH) > 60
    assert "msseg_ros.core.segmentation.base" in GRAPH["msseg_ros.core.learning.train"]
    assert "msseg_ros.core.learning.targets" in GRAPH["msseg_ros.core.segmentation.bicameral"]  # deferred


def test_no_import_cycle():
    try:
        tuple(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as exc:
        pytest.fail("import cycle: " + " -> ".join(exc.args[1]))


def test_a_cycle_is_detected():
    """The check above can fail: a two-module loop is reported."""
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({**GRAPH, "msseg_ros.core.errors": {"msseg_ros.core.registry"}})
              .static_order())


@pytest.mark.parametrize("lower, upper", [
    ("msseg_ros.core.segmentation", "msseg_ros.core.sim"),   # sim uses models, not the reverse
    ("msseg_ros.core.learning", "msseg_ros.core.sim"),       # sim writes datasets; learning reads them
    ("msseg_ros.core", "msseg_ros.ros"),                     # core never imports ROS adapters
    ("msseg_ros.core", "msseg_ros.cli"),
    ("msseg_ros.core", "msseg_ros.graph"),
    ("msseg_ros.ros", "msseg_ros.cli"),
])
def test_layers_point_one_way(lower, upper):
    offenders = sorted(
        f"{name} imports {dep}"
        for name, deps in GRAPH.items() if name == lower or name.startswith(lower + ".")
        for dep in deps if dep == upper or dep.startswith(upper + ".")
    )
    assert offenders == []
